//! Who may call what, and how much: API keys on every protected route (taken from the spec, so a
//! new endpoint cannot be forgotten), the queue cap, the upload rate, body and time limits, and
//! connections that trickle their request head.

use std::time::Duration;

use futures::StreamExt;
use offload::app::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const KEY: &str = "key-two";

/// Every operation in the served spec as (method, concrete path, public?).
async fn operations(app: &TestApp) -> Vec<(Method, String, bool)> {
    let spec: Value = app.get("/openapi.json").await.json().await.unwrap();
    let some_id = uuid::Uuid::new_v4().to_string();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"].as_array().is_some_and(Vec::is_empty);
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((method, path.replace("{id}", &some_id), public));
        }
    }
    assert!(ops.len() >= 14, "the spec lists the API: {ops:?}");
    ops
}

/// Routes outside the spec that show or change jobs: pages, assets, the board.
fn other_protected_routes(app: &TestApp) -> Vec<String> {
    let board = format!("http://{}", app.board_addr.expect("the board listens"));
    vec![
        app.url("/"),
        app.url(&format!("/jobs/{}", uuid::Uuid::new_v4())),
        app.url("/assets/job.js"),
        app.url("/board"),
        format!("{board}/"),
        format!("{board}/api/v1/queues"),
    ]
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn status_of(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    auth: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = client.request(method, url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    // Event streams never end: the status and headers are all that matter.
    let body = if headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"))
    {
        String::new()
    } else {
        resp.text().await.unwrap_or_default()
    };
    (status, headers, body)
}

#[tokio::test]
async fn with_api_keys_every_protected_route_wants_one() {
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.http.api_keys = format!("key-one,{KEY}").parse().unwrap();
    })
    .await;
    let client = no_redirects();
    let spec: Value = client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        spec["components"]["securitySchemes"]["apiKey"]["scheme"], "bearer",
        "Swagger UI offers the scheme"
    );
    let mut routes: Vec<(Method, String, bool)> = operations(&app).await;
    routes.extend(
        other_protected_routes(&app)
            .into_iter()
            .map(|url| (Method::GET, url, false)),
    );
    routes.push((Method::GET, app.url("/docs"), true));
    for (method, route, public) in routes {
        let url = if route.starts_with("http") {
            route.clone()
        } else {
            app.url(&route)
        };
        let (anonymous, headers, body) = status_of(&client, method.clone(), &url, None).await;
        if public {
            assert_ne!(anonymous, 401, "{method} {route} is public");
            continue;
        }
        assert_eq!(anonymous, 401, "{method} {route} without a key: {body}");
        assert!(headers.contains_key("www-authenticate"), "{method} {route}");
        let code = serde_json::from_str::<Value>(&body).unwrap()["code"].clone();
        assert_eq!(code, "unauthorized", "{method} {route}");
        let (wrong, _, _) =
            status_of(&client, method.clone(), &url, Some("Bearer key-three")).await;
        assert_eq!(wrong, 401, "{method} {route} with a wrong key");
        let (right, _, body) = status_of(
            &client,
            method.clone(),
            &url,
            Some(&format!("Bearer {KEY}")),
        )
        .await;
        assert_ne!(right, 401, "{method} {route} with a good key: {body}");
    }
}

#[tokio::test]
async fn without_api_keys_nothing_asks_for_one() {
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |_| {}).await;
    let client = no_redirects();
    let mut routes: Vec<(Method, String)> = operations(&app)
        .await
        .into_iter()
        .map(|(m, p, _)| (m, app.url(&p)))
        .collect();
    routes.extend(
        other_protected_routes(&app)
            .into_iter()
            .map(|url| (Method::GET, url)),
    );
    for (method, url) in routes {
        let (status, _, body) = status_of(&client, method.clone(), &url, None).await;
        assert_ne!(status, 401, "{method} {url}: {body}");
    }
}

#[tokio::test]
async fn a_full_queue_refuses_submits_with_429_and_retry_after() {
    // No worker: what is submitted stays queued.
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| s.http.max_queued_jobs = 3).await;
    for _ in 0..3 {
        app.create_job("noop", json!({})).await;
    }
    let resp = app
        .post_json("/api/v1/jobs", &json!({"kind": "noop", "args": {}}))
        .await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "overloaded", "{body}");
    let bytes = std::fs::read(sample("deck5.pptx")).unwrap();
    let upload = app.upload_bytes("deck5.pptx", bytes, None).await;
    assert_eq!(upload.status(), 429, "uploads are submits too");
    // Reads are never refused for load.
    let list = app.get("/api/v1/jobs").await;
    assert_eq!(list.status(), 200);
    let listed: Value = list.json().await.unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 3, "{listed}");
}

#[tokio::test]
async fn uploads_over_the_per_client_rate_get_429() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| {
        s.http.uploads_per_minute = 2
    })
    .await;
    let bytes = std::fs::read(sample("deck5.pptx")).unwrap();
    for _ in 0..2 {
        let resp = app.upload_bytes("deck5.pptx", bytes.clone(), None).await;
        assert_eq!(resp.status(), 202);
    }
    let resp = app.upload_bytes("deck5.pptx", bytes, None).await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=30).contains(&wait),
        "at 2/minute a token comes within 30s: {wait}"
    );
    // Other operations are not rate limited.
    let job = app.create_job("noop", json!({})).await;
    assert!(job["id"].is_string());
}

#[tokio::test]
async fn a_json_body_over_the_limit_gets_413_declared_or_streamed() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| s.http.max_json_bytes = 1024).await;
    let big = json!({"kind": "noop", "args": {}, "padding": "x".repeat(4096)}).to_string();
    let declared = app
        .client
        .post(app.url("/api/v1/jobs"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    let body: Value = declared.json().await.unwrap();
    assert_eq!(body["code"], "too_large", "{body}");

    // Chunked, with no Content-Length: cut when it grows past the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.as_bytes().chunks(512).map(|c| Ok(c.to_vec())).collect();
    let streamed = app
        .client
        .post(app.url("/api/v1/jobs"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let body: Value = streamed.json().await.unwrap();
    assert_eq!(body["code"], "too_large", "{body}");
}

#[tokio::test]
async fn an_upload_that_stalls_gets_408() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| {
        s.http.upload_timeout_secs = 1
    })
    .await;
    // The multipart head arrives, then nothing: the body never ends.
    let head =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pptx\"\r\n\r\nPK";
    let body = futures::stream::iter([Ok::<_, std::io::Error>(head.to_vec())])
        .chain(futures::stream::pending());
    let resp = app
        .client
        .post(app.url("/api/v1/exports"))
        .header("content-type", "multipart/form-data; boundary=b")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 408);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "request_timeout", "{body}");
}

#[tokio::test]
async fn a_connection_trickling_its_request_head_is_closed() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |s| {
        s.http.header_timeout_secs = 1
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = conn.into_split();
    // One header byte every 100 ms: each read is "progress", but the head never completes.
    let trickle = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticker.tick().await;
            if writer.write_all(b"X").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut answer)).await;
    trickle.abort();
    assert!(read.is_ok(), "the server closed the connection");
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "no response to an unfinished head"
    );
    // The server is fine for everyone else.
    let ok = app.get("/healthz").await;
    assert_eq!(ok.status(), 200);
}
