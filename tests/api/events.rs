//! The SSE stream: every change, in order, ending at a final status.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(events_arrive_in_order_and_end_at_the_final_status);

async fn events_arrive_in_order_and_end_at_the_final_status(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = id_of(
        &app.create_job("sleep", json!({"seconds": 0.5, "fail_times": 1}))
            .await,
    );
    let events = app.events(&id).await;

    // Ends with the final status, and nothing after it.
    assert_eq!(events.last().unwrap()["status"], "succeeded");
    assert_eq!(events.iter().filter(|e| is_final(e)).count(), 1);
    // Attempts never go back; within an attempt, progress never goes back.
    for pair in events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (att_a, att_b) = (
            a["attempts"].as_u64().unwrap(),
            b["attempts"].as_u64().unwrap(),
        );
        assert!(att_b >= att_a, "attempts went back: {a} then {b}");
        if att_a == att_b && a["status"] == "running" && b["status"] == "running" {
            assert!(
                b["progress"]["percent"].as_u64() >= a["progress"]["percent"].as_u64(),
                "{a} then {b}"
            );
        }
    }
    // The run went running → queued (with the error) → running → succeeded.
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    let mut compact: Vec<&str> = statuses.clone();
    compact.dedup();
    let tail: Vec<&str> = compact
        .iter()
        .skip_while(|s| **s == "queued")
        .copied()
        .collect();
    assert_eq!(
        tail,
        ["running", "queued", "running", "succeeded"],
        "{statuses:?}"
    );
    // Progress was streamed, not just the start and the end.
    let running: Vec<&Value> = events.iter().filter(|e| e["status"] == "running").collect();
    assert!(running.len() >= 10, "progress events: {}", running.len());

    // A finished job's stream is just the final state.
    let again = app.events(&id).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["status"], "succeeded");
}
