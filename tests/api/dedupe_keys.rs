//! Dedupe keys are never truncated: long delivery ids that share a prefix are two events.

use std::time::Duration;

use ltv_tagger::domain::Source;

use crate::helpers::{spawn_app, trigger_body, AppOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_invocation_ids_sharing_a_100_character_prefix_are_two_events() {
    let app = spawn_app(AppOptions::default()).await;
    let prefix = "i".repeat(100);
    let body = trigger_body(91, "gold@shop.test", "");

    let first = app
        .post_zendesk(&body, Some(&format!("{prefix}-one")))
        .await;
    assert_eq!(first.status().as_u16(), 202);
    let first: serde_json::Value = first.json().await.expect("json");
    assert_eq!(first["status"], "queued", "{first}");
    app.wait_for_audit(Source::Zendesk, 91, 1).await;

    // Same body, another delivery: processed again, not answered "duplicate".
    let second = app
        .post_zendesk(&body, Some(&format!("{prefix}-two")))
        .await;
    assert_eq!(second.status().as_u16(), 202);
    let second: serde_json::Value = second.json().await.expect("json");
    assert_eq!(second["status"], "queued", "{second}");
    app.wait_for_audit(Source::Zendesk, 91, 2).await;

    // The first id again is still recognised as a repeat.
    let again = app
        .post_zendesk(&body, Some(&format!("{prefix}-one")))
        .await;
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["status"], "duplicate", "{again}");

    app.wait_idle(Duration::from_secs(10)).await;
    assert_eq!(app.count("inbox").await, 2);
    assert_eq!(app.zendesk_tags(91), vec!["vip-gold".to_string()]);
    app.stop().await;
}
