//! Completion webhooks against a real receiver on loopback: signed, delivered once per final
//! job, retried until the receiver takes it, and refused at submit for addresses the service
//! may not call.

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use offload::app::Role;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, IntoResponse, Request, Route, Server, handler, web::Data};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::helpers::*;

pub const SECRET: &str = "test-webhook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    signature: String,
    idempotency_key: String,
    /// `Offload-Event`.
    pub event: String,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn job(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks `Offload-Signature` the way a receiver should (see the README).
    pub fn signature_is_valid(&self) -> bool {
        let mut fields = self.signature.split(',');
        let t = fields.next().and_then(|f| f.strip_prefix("t="));
        let v1 = fields.next().and_then(|f| f.strip_prefix("v1="));
        let (Some(t), Some(v1)) = (t, v1) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        let Ok(given) = hex::decode(v1) else {
            return false;
        };
        mac.verify_slice(&given).is_ok()
    }
}

pub struct Receiver {
    pub url: String,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

#[derive(Clone)]
struct ReceiverState {
    /// Answers to give, in order (then 200).
    script: Arc<Mutex<Vec<u16>>>,
    seen: mpsc::UnboundedSender<Delivery>,
}

#[handler]
async fn receive(req: &Request, body: Vec<u8>, state: Data<&ReceiverState>) -> poem::Response {
    let header = |name: &str| req.header(name).map(str::to_string).unwrap_or_default();
    let _ = state.seen.send(Delivery {
        signature: header("offload-signature"),
        idempotency_key: header("idempotency-key"),
        event: header("offload-event"),
        body,
    });
    let mut script = state.script.lock().unwrap();
    let status = if script.is_empty() {
        200
    } else {
        script.remove(0)
    };
    StatusCode::from_u16(status).unwrap().into_response()
}

/// A receiver on loopback answering `script` statuses first, then 200.
pub async fn receiver(script: Vec<u16>) -> Receiver {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let (seen, deliveries) = mpsc::unbounded_channel();
    let state = ReceiverState {
        script: Arc::new(Mutex::new(script)),
        seen,
    };
    let app = Route::new().at("/hook", receive).data(state);
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Receiver {
        url: format!("http://{addr}/hook"),
        deliveries,
    }
}

impl Receiver {
    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(PATIENCE, self.deliveries.recv())
            .await
            .expect("a delivery within the patience")
            .unwrap()
    }
}

pub async fn app_with_webhooks() -> TestApp {
    app_with_webhooks_on(Backend::Sqlite).await
}

pub async fn app_with_webhooks_on(backend: Backend) -> TestApp {
    spawn_app_with(backend, Role::Serve, |s| {
        s.webhooks.webhook_secret = SECRET.into();
        s.webhooks.outbound_allow = "127.0.0.1".parse().unwrap();
    })
    .await
}

async fn submit(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/jobs", &body).await
}

/// Waits until every webhook delivery job has ended (so no more requests are coming).
pub async fn deliveries_settled(app: &TestApp) -> Vec<Value> {
    let page: Value = app
        .get("/api/v1/jobs?kind=webhook&limit=100")
        .await
        .json()
        .await
        .unwrap();
    let mut ended = Vec::new();
    for job in page["jobs"].as_array().unwrap() {
        ended.push(app.wait_final(&id_of(job)).await);
    }
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_final_job_is_delivered_once_signed() {
    let app = app_with_webhooks().await;
    let mut hook = receiver(vec![]).await;
    let ok = submit(&app, json!({"kind": "noop", "callback_url": hook.url})).await;
    assert_eq!(ok.status(), 202);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["callback_url"], hook.url.as_str());
    let failing = submit(
        &app,
        json!({"kind": "sleep", "args": {"seconds": 0, "fail_times": 99}, "callback_url": hook.url}),
    )
    .await
    .json::<Value>()
    .await
    .unwrap();

    let mut got = vec![hook.next().await, hook.next().await];
    got.sort_by_key(|d| d.job()["kind"].as_str().unwrap().to_string());
    for d in &got {
        assert!(d.signature_is_valid(), "signature {} verifies", d.signature);
        assert!(!d.idempotency_key.is_empty());
    }
    let (noop, sleep) = (got[0].job(), got[1].job());
    assert_eq!(
        (noop["id"].clone(), noop["status"].clone()),
        (ok["id"].clone(), json!("succeeded"))
    );
    assert_eq!(
        (sleep["id"].clone(), sleep["status"].clone()),
        (failing["id"].clone(), json!("failed"))
    );
    let notify = noop["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (notify["name"].clone(), notify["status"].clone()),
        (json!("notify"), json!("done"))
    );

    let settled = deliveries_settled(&app).await;
    assert_eq!(settled.len(), 2, "one delivery job per final job");
    assert!(
        settled
            .iter()
            .all(|d| d["status"] == "succeeded" && d["attempts"] == 1)
    );
    assert!(
        hook.deliveries.try_recv().is_err(),
        "and nothing more arrived"
    );
    // A tampered body does not verify.
    let mut forged = got[0].clone();
    forged.body = br#"{"status":"succeeded"}"#.to_vec();
    assert!(!forged.signature_is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_the_third_delivery() {
    let app = app_with_webhooks().await;
    let mut hook = receiver(vec![500, 503]).await;
    let job: Value = submit(&app, json!({"kind": "noop", "callback_url": hook.url}))
        .await
        .json()
        .await
        .unwrap();
    let tries = [hook.next().await, hook.next().await, hook.next().await];
    for t in &tries {
        assert_eq!(t.job()["id"], job["id"]);
        assert!(t.signature_is_valid());
    }
    assert!(
        tries
            .iter()
            .all(|t| t.idempotency_key == tries[0].idempotency_key),
        "every try carries the same Idempotency-Key"
    );
    let settled = deliveries_settled(&app).await;
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0]["status"], "succeeded");
    assert_eq!(settled[0]["attempts"], 3);
    assert_eq!(settled[0]["id"], tries[0].idempotency_key.as_str());
    let codes: Vec<&str> = settled[0]["attempt_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["webhook_failed", "webhook_failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused_at_submit() {
    // Webhooks configured, but no OUTBOUND_ALLOW: loopback is off limits.
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| {
        s.webhooks.webhook_secret = SECRET.into();
    })
    .await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "file:///etc/passwd",
    ] {
        let resp = submit(&app, json!({"kind": "noop", "callback_url": url})).await;
        assert_eq!(resp.status(), 422, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_arguments");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("body.callback_url: "),
            "{body}"
        );
    }
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(sample("deck5.pptx")).unwrap())
                .file_name("deck5.pptx"),
        )
        .text("callback_url", "http://10.0.0.1/hook");
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("field callback_url: "),
        "{body}"
    );
    let listed = app.list_jobs("").await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_callbacks_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| {
        s.webhooks.outbound_allow = "127.0.0.1".parse().unwrap();
    })
    .await;
    let resp = submit(
        &app,
        json!({"kind": "noop", "callback_url": "http://127.0.0.1:9/"}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("WEBHOOK_SECRET"),
        "{body}"
    );
    // Internal kinds cannot be submitted directly either.
    let resp = submit(
        &app,
        json!({"kind": "webhook", "args": {"job_id": "x", "url": "http://127.0.0.1:9/"}}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unknown_kind");
}
