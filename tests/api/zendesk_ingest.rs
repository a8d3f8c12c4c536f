//! What the Zendesk route queues: only the configured event-subscription types, and test-signed
//! deliveries only when dangerously allowed — then with a warning and a count.

use std::time::Duration;

use ltv_tagger::config::ZENDESK_TEST_SECRET;
use ltv_tagger::http::webhooks::zendesk;

use crate::helpers::{
    free_port, now_ts, rig, spawn_app, trigger_body, wait_until, AppOptions, Db, ServeProcess,
};

fn event_body(kind: &str, ticket: u64, event_id: &str) -> String {
    serde_json::json!({
        "type": format!("zen:event-type:{kind}"),
        "id": event_id,
        "detail": { "id": ticket.to_string(), "requester_id": "501" },
    })
    .to_string()
}

async fn status_of(res: reqwest::Response) -> (u16, String) {
    let code = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    (
        code,
        body["status"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_event_types_are_queued_and_others_are_ignored_without_a_lookup() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.add_zendesk_user("501", "gold@shop.test");
    for (i, kind) in [
        "ticket.status_changed",
        "ticket.comment_added",
        "user.created",
    ]
    .iter()
    .enumerate()
    {
        let res = app
            .post_zendesk(&event_body(kind, 70, &format!("ev-{i}")), None)
            .await;
        assert_eq!(status_of(res).await, (202, "ignored".to_string()), "{kind}");
    }
    // An ignored type needs no requester at all.
    let bare = r#"{"type": "zen:event-type:ticket.deleted", "detail": {"id": "70"}}"#;
    assert_eq!(
        status_of(app.post_zendesk(bare, None).await).await,
        (202, "ignored".to_string())
    );
    assert_eq!(app.count("inbox").await, 0, "ignored events are not stored");
    assert_eq!(app.count("job").await, 0);

    let res = app
        .post_zendesk(&event_body("ticket.created", 70, "ev-created"), None)
        .await;
    assert_eq!(status_of(res).await, (202, "queued".to_string()));
    let rows = app
        .wait_for_audit(ltv_tagger::domain::Source::Zendesk, 70, 1)
        .await;
    assert_eq!(rows[0].record.outcome, "tagged");
    let lookups = app
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/users/"))
        .count();
    assert_eq!(
        lookups, 1,
        "one requester look-up, for the created event only"
    );
    // Trigger webhooks are always queued.
    let res = app
        .post_zendesk(&trigger_body(71, "gold@shop.test", ""), None)
        .await;
    assert_eq!(status_of(res).await, (202, "queued".to_string()));
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            r#"ltv_tagger_webhooks_received_total{outcome="ignored",source="zendesk"} 4"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_event_types_replace_the_default() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|raw| {
            raw.zendesk.event_types = vec!["zen:event-type:ticket.tags_changed".into()]
        }),
        ..AppOptions::default()
    })
    .await;
    let created = app
        .post_zendesk(&event_body("ticket.created", 72, "a"), None)
        .await;
    assert_eq!(status_of(created).await, (202, "ignored".to_string()));
    let changed = app
        .post_zendesk(&event_body("ticket.tags_changed", 72, "b"), None)
        .await;
    assert_eq!(status_of(changed).await, (202, "queued".to_string()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_the_public_test_secret_warns_at_start_and_counts_each_such_request() {
    let r = rig(Db::Sqlite, |raw| {
        raw.zendesk.dangerous_accept_test_secret = true
    })
    .await;
    let log = r.dir.path().join("serve.log");
    let mut p = ServeProcess::start(&r.config, free_port(), &log, &[]).await;
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("WARN") && text.contains("dangerous_accept_test_secret is on"),
        "{text}"
    );
    let http = reqwest::Client::new();
    let body = trigger_body(73, "gold@shop.test", "");
    let ts = now_ts();
    let res = http
        .post(format!("{}/webhooks/zendesk", p.base()))
        .header(
            "X-Zendesk-Webhook-Signature",
            zendesk::sign(ZENDESK_TEST_SECRET, &ts, body.as_bytes()),
        )
        .header("X-Zendesk-Webhook-Signature-Timestamp", ts)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 202);
    wait_until(Duration::from_secs(10), "the test-signed count", || async {
        let m = http
            .get(format!("{}/metrics", p.base()))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        m.contains("ltv_tagger_zendesk_test_signed_total 1")
    })
    .await;
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(30)).await;
    r.drop_dbs().await;
}
