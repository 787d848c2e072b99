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
    a_merge_gets_its_task_when_its_last_part_succeeds,
    a_part_that_fails_fails_its_merge_and_cancels_the_others,
    retrying_a_merge_reruns_only_its_parts_that_did_not_succeed,
    a_delayed_job_is_queued_with_its_time,
    a_clean_shutdown_takes_its_workers_off_the_board,
    a_submit_hands_back_its_rows_as_they_are_stored,
);

/// A merge job with `n` parts (argument-only `noop`s stand in for exports here), enqueued
/// the way the API does it; returns the merge row and the parts' rows.
async fn merge_of(
    queue: &Queue,
    n: usize,
) -> (offload::queue::JobRecord, Vec<offload::queue::JobRecord>) {
    let mut merge = NewJob::new("merge", json!({"format": "pdf"}), 3);
    merge.waiting_parts = Some(n as i64);
    let merge_id = merge.id;
    let parts = (0..n).map(|i| {
        let mut part = new_job("noop", None);
        part.part_of = Some((merge_id, i as i64));
        part
    });
    let jobs: Vec<NewJob> = std::iter::once(merge).chain(parts).collect();
    let mut rows: Vec<_> = queue
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job)
        .collect();
    let merge = rows.remove(0);
    (merge, rows)
}

/// Runs one attempt of `row` to success through the queue, as a worker would.
async fn succeed(queue: &Queue, row: &offload::queue::JobRecord) {
    let started = queue
        .begin_attempt(row.id, &row.task_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        queue
            .succeed(&started, None, &[], &[])
            .await
            .unwrap()
            .is_some()
    );
}

async fn fail_for_good(queue: &Queue, row: &offload::queue::JobRecord) {
    let started = queue
        .begin_attempt(row.id, &row.task_id)
        .await
        .unwrap()
        .unwrap();
    let failure = Failure {
        code: "document_corrupt",
        message: "damaged",
        is_final: true,
        history: &[],
    };
    assert!(queue.fail(&started, &failure).await.unwrap().is_some());
}

async fn a_merge_gets_its_task_when_its_last_part_succeeds(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let (merge, parts) = merge_of(&queue, 2).await;
    assert_eq!(
        queue.pending_tasks("merge").await.unwrap(),
        0,
        "no task while parts run"
    );
    assert_eq!(queue.pending_tasks("noop").await.unwrap(), 2);
    assert_eq!(
        queue
            .parts(merge.id)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        parts.iter().map(|p| p.id).collect::<Vec<_>>(),
        "parts come back in order"
    );

    succeed(&queue, &parts[1]).await;
    let waiting = queue.get(merge.id).await.unwrap().unwrap();
    assert_eq!(waiting.waiting_parts, Some(1));
    assert_eq!(waiting.status, JobStatus::Queued);
    assert_eq!(waiting.progress_percent, 45);
    assert_eq!(
        waiting.progress_message.as_deref(),
        Some("converted 1 of 2 parts")
    );
    assert_eq!(queue.pending_tasks("merge").await.unwrap(), 0);

    succeed(&queue, &parts[0]).await;
    let ready = queue.get(merge.id).await.unwrap().unwrap();
    assert_eq!(ready.waiting_parts, Some(0));
    assert_eq!(
        queue.pending_tasks("merge").await.unwrap(),
        1,
        "the last part pushed it"
    );
    assert!(
        queue
            .begin_attempt(ready.id, &ready.task_id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_part_that_fails_fails_its_merge_and_cancels_the_others(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let (merge, parts) = merge_of(&queue, 3).await;
    succeed(&queue, &parts[0]).await;
    // (No worker here: the parts' apalis tasks stay pending; only the count's change matters.)
    let pending = queue.pending_tasks("noop").await.unwrap();
    fail_for_good(&queue, &parts[1]).await;
    let failed = queue.get(merge.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("document_corrupt"));
    assert_eq!(
        failed.error_message.as_deref(),
        Some("part 2 (document): damaged")
    );
    let statuses: Vec<JobStatus> = queue
        .parts(merge.id)
        .await
        .unwrap()
        .iter()
        .map(|p| p.status)
        .collect();
    assert_eq!(
        statuses,
        [
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled
        ]
    );
    assert_eq!(
        queue.pending_tasks("noop").await.unwrap(),
        pending - 1,
        "the cancelled part's task is gone"
    );
    assert_eq!(queue.pending_tasks("merge").await.unwrap(), 0);
}

async fn retrying_a_merge_reruns_only_its_parts_that_did_not_succeed(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let (merge, parts) = merge_of(&queue, 2).await;
    succeed(&queue, &parts[0]).await;
    fail_for_good(&queue, &parts[1]).await;
    let before = queue.get(parts[0].id).await.unwrap().unwrap();

    // A part alone cannot be retried or deleted: its merge job decides.
    assert!(matches!(
        queue.retry(parts[1].id).await,
        Err(offload::queue::QueueError::PartOfMerge { index: 1, .. })
    ));
    assert!(queue.delete(parts[1].id).await.is_err());

    let pending = queue.pending_tasks("noop").await.unwrap();
    let retried = queue.retry(merge.id).await.unwrap();
    assert_eq!(retried.status, JobStatus::Queued);
    assert_eq!(retried.waiting_parts, Some(1));
    let now: Vec<_> = queue.parts(merge.id).await.unwrap();
    assert_eq!(now[0].status, JobStatus::Succeeded);
    assert_eq!(
        now[0].finished_at, before.finished_at,
        "the succeeded part did not run again"
    );
    assert_eq!(now[1].status, JobStatus::Queued);
    assert_ne!(now[1].task_id, parts[1].task_id, "under a new task");
    assert_eq!(
        queue.pending_tasks("noop").await.unwrap(),
        pending + 1,
        "one part re-queued"
    );
    assert_eq!(queue.pending_tasks("merge").await.unwrap(), 0);

    succeed(&queue, &now[1]).await;
    assert_eq!(queue.pending_tasks("merge").await.unwrap(), 1);
    let gone = queue.delete(merge.id).await.unwrap();
    assert_eq!(gone.len(), 3, "the merge job and its parts");
    assert!(queue.get(parts[0].id).await.unwrap().is_none());
}

async fn a_delayed_job_is_queued_with_its_time(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut job = new_job("noop", None);
    job.run_at = Some(at.timestamp_micros());
    let row = queue.enqueue(vec![job]).await.unwrap().remove(0).job;
    assert_eq!(row.run_at, Some(at.timestamp_micros()));
    let message = row.progress_message.unwrap();
    assert!(message.starts_with("scheduled for "), "{message}");
    assert_eq!(queue.pending_tasks("noop").await.unwrap(), 1);
}

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
    let id = job.id;

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
        parts: Default::default(),
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
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result, None);
}

async fn begin_attempt_only_takes_jobs_of_its_own_task(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    let job = queue
        .enqueue(vec![new_job("sleep", None)])
        .await
        .unwrap()
        .remove(0)
        .job;
    let id = job.id;
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
    assert_eq!(running.status, JobStatus::Running);
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

/// The apalis worker rows of the app's database (what the board lists).
async fn worker_count(app: &TestApp, backend: Backend) -> i64 {
    let url = app.settings.database.url.expose();
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let n = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.workers")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let n = sqlx::query_scalar("SELECT COUNT(*) FROM Workers")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
    }
}

async fn a_clean_shutdown_takes_its_workers_off_the_board(backend: Backend) {
    let mut app = spawn_app(backend).await;
    // A job run proves the workers polled (they register when they first do).
    let job = app.create_job("noop", json!({})).await;
    assert_eq!(app.wait_final(&id_of(&job)).await["status"], "succeeded");
    assert!(
        worker_count(&app, backend).await > 0,
        "running workers are listed"
    );
    app.stop().await;
    assert_eq!(worker_count(&app, backend).await, 0);
}

/// A submit builds the rows it hands back from what it bound (the insert returns only ids):
/// every column of every kind of new row must read back the same, alone and in a batch.
async fn a_submit_hands_back_its_rows_as_they_are_stored(backend: Backend) {
    let (_app, queue) = queue_without_workers(backend).await;
    // serde_json without its float_roundtrip feature reads this float back one step off
    // (serde-rs/json#1336).
    let n = json!([1, 1.5777777777770001_f64, null]);
    let mut full = NewJob::new("export", json!({"format": "pdf", "n": n}), 4);
    full.tenant = "acme".parse().unwrap();
    full.priority = offload::model::Priority::Interactive;
    full.metadata =
        offload::model::Metadata::check([("order".into(), "42".into())].into(), "m").unwrap();
    full.idempotency_key = Some("acme:hand-back".into());
    full.input = Some(offload::queue::InputFile {
        key: "inputs/x".into(),
        filename: "report.docx".into(),
        content_type: "application/octet-stream".into(),
        size: 1234,
        format: "docx".into(),
        sha256: Some("ab".repeat(32)),
    });
    full.steps = vec!["convert"];
    full.callback_url = Some("https://example.com/hook".into());
    full.run_at = Some((chrono::Utc::now() + chrono::Duration::hours(1)).timestamp_micros());
    full.secret = Some(offload::model::Sealed::new("sealed-text".into()));
    let mut merge = NewJob::new("merge", json!({"format": "pdf"}), 3);
    merge.waiting_parts = Some(1);
    let mut part = new_job("noop", None);
    part.part_of = Some((merge.id, 0));
    let enqueued = queue.enqueue(vec![full, merge, part]).await.unwrap();
    assert!(enqueued.iter().all(|e| e.created));
    let batch = offload::model::batch::NewBatch::new(Default::default());
    let in_batch = vec![new_job("noop", Some("in-batch")), new_job("noop", None)];
    let batched = queue.enqueue_batch(batch, in_batch).await.unwrap();
    // A key taken before, beside a new job: the earlier job comes back, the new one is made.
    let again = queue
        .enqueue(vec![
            new_job("noop", Some("in-batch")),
            new_job("noop", None),
        ])
        .await
        .unwrap();
    assert!(!again[0].created && again[1].created);
    assert_eq!(again[0].job, batched.jobs[0]);
    let handed: Vec<_> = enqueued
        .into_iter()
        .chain(again)
        .map(|e| e.job)
        .chain(batched.jobs)
        .collect();
    assert_eq!(handed.len(), 7);
    for job in handed {
        let stored = queue.get(job.id).await.unwrap().unwrap();
        assert_eq!(job, stored, "the {} job as handed back", stored.kind);
    }
}
