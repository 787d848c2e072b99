//! The database seam driven directly — the same checks on Postgres and SQLite, the way River
//! runs one driver test suite against every backend.

use offload::app::Role;
use offload::jobs::JobStatus;
use offload::queue::{Failure, NewJob, Queue, ResultFile};
use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(
    an_attempt_that_lost_its_lease_cannot_write,
    begin_attempt_only_takes_jobs_of_its_own_task,
    idempotency_keys_are_unique_across_a_batch,
    one_contender_gets_a_lease_until_it_runs_out,
);

fn new_job(kind: &str, key: Option<&str>) -> NewJob {
    let mut job = NewJob::new(kind, json!({}), 3);
    job.idempotency_key = key.map(str::to_string);
    job
}

async fn queue_without_workers(backend: Backend) -> (TestApp, Queue) {
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let queue = app.queue.clone();
    (app, queue)
}

async fn an_attempt_that_lost_its_lease_cannot_write(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let job = queue
        .enqueue(vec![new_job("sleep", None)])
        .await
        .unwrap()
        .remove(0)
        .job;
    let id = job.uuid();

    // Attempt 1 starts, then is declared dead and attempt 2 starts on the same task.
    let first = queue
        .begin_attempt(id, &job.task_id)
        .await
        .unwrap()
        .unwrap();
    let second = queue
        .begin_attempt(id, &job.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.attempts, second.attempts), (1, 2));

    // The stale attempt's writes are refused, whatever they are.
    assert!(!queue.progress(&first.lease(), 50, "stale").await.unwrap());
    assert!(!queue.checkpoint(&first.lease(), &[]).await.unwrap());
    let stale_result = ResultFile {
        key: "stale".into(),
        filename: "stale.pdf".into(),
        content_type: "application/pdf".into(),
        size: 1,
    };
    assert!(
        queue
            .succeed(&first, Some(&stale_result), &[], &[])
            .await
            .unwrap()
            .is_none()
    );
    let failure = Failure {
        code: "x",
        message: "stale",
        is_final: true,
        history: &[],
    };
    assert!(queue.fail(&first, &failure).await.unwrap().is_none());

    // The current attempt's are applied.
    assert!(
        queue
            .progress(&second.lease(), 40, "working")
            .await
            .unwrap()
    );
    assert!(queue.checkpoint(&second.lease(), &[]).await.unwrap());
    let done = queue
        .succeed(&second, None, &[], &[])
        .await
        .unwrap()
        .expect("current lease succeeds");
    assert_eq!(done.status(), JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result_key, None);
}

async fn begin_attempt_only_takes_jobs_of_its_own_task(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let job = queue
        .enqueue(vec![new_job("sleep", None)])
        .await
        .unwrap()
        .remove(0)
        .job;
    let id = job.uuid();
    assert!(
        queue
            .begin_attempt(id, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .await
            .unwrap()
            .is_none(),
        "foreign task"
    );

    // Cancelled: nothing to start. Retried: only the new task may start it.
    queue.cancel(id).await.unwrap();
    assert!(
        queue
            .begin_attempt(id, &job.task_id)
            .await
            .unwrap()
            .is_none()
    );
    let retried = queue.retry(id).await.unwrap();
    assert_ne!(retried.task_id, job.task_id);
    assert!(
        queue
            .begin_attempt(id, &job.task_id)
            .await
            .unwrap()
            .is_none(),
        "old task"
    );
    let running = queue
        .begin_attempt(id, &retried.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.status(), JobStatus::Running);
    assert_eq!(running.attempts, 1);

    // Deleted: nothing to start or write.
    let lease = running.lease();
    assert_eq!(queue.delete(id).await.unwrap().len(), 1);
    assert!(!queue.progress(&lease, 10, "gone").await.unwrap());
    assert!(queue.get(id).await.unwrap().is_none());
}

async fn idempotency_keys_are_unique_across_a_batch(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let out = queue
        .enqueue(vec![
            new_job("noop", Some("k1")),
            new_job("noop", Some("k1")),
            new_job("noop", Some("k2")),
        ])
        .await
        .unwrap();
    assert!(out[0].created && !out[1].created && out[2].created);
    assert_eq!(out[0].job.id, out[1].job.id);
    assert_ne!(out[0].job.id, out[2].job.id);
    let found = queue.find_by_idempotency_key("k2").await.unwrap().unwrap();
    assert_eq!(found.id, out[2].job.id);
}

async fn one_contender_gets_a_lease_until_it_runs_out(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let now = offload::queue::now_micros();
    let contenders = (0..4).map(|i| {
        let queue = queue.clone();
        async move {
            queue
                .acquire_lease("sweeper", &format!("p{i}"), now + 60_000_000)
                .await
                .unwrap()
        }
    });
    let won: Vec<bool> = futures::future::join_all(contenders).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert!(
        !queue
            .acquire_lease("sweeper", "late", now + 120_000_000)
            .await
            .unwrap(),
        "still held"
    );
    assert!(
        queue.acquire_lease("other", "late", now + 1).await.unwrap(),
        "leases are per name"
    );
    // Once it ran out, the next contender gets it.
    assert!(
        queue
            .acquire_lease("other", "next", now + 60_000_000)
            .await
            .unwrap()
    );
}
