//! Shadow mode: the service looks up, decides and records, and no tag write reaches the helpdesk.

use ltv_tagger::domain::Source;
use ltv_tagger::policy::Mode;

use crate::helpers::{spawn_app, trigger_body, AppOptions};

#[tokio::test]
async fn shadow_mode_records_shadow_decisions_looks_requesters_up_and_writes_no_tag() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|r| r.policy.mode = Mode::Shadow),
        ..Default::default()
    })
    .await;
    app.fake.add_zendesk_user("77", "almost@shop.test");
    let by_id = serde_json::json!({
        "ticket_id": "2", "requester_email": "", "requester_id": "77", "tags": ""
    })
    .to_string();
    for body in [
        trigger_body(1, "gold@shop.test", ""),
        by_id,
        trigger_body(3, "small@shop.test", ""),
    ] {
        assert_eq!(app.post_zendesk(&body, None).await.status().as_u16(), 202);
    }
    let gold = app.wait_for_audit(Source::Zendesk, 1, 1).await;
    let almost = app.wait_for_audit(Source::Zendesk, 2, 1).await;
    let small = app.wait_for_audit(Source::Zendesk, 3, 1).await;
    assert_eq!(gold[0].record.outcome, "shadow");
    assert_eq!(gold[0].record.tags_decided, ["vip-gold"]);
    assert!(gold[0].record.tags_written.is_empty());
    assert_eq!(
        gold[0].record.detail.as_deref(),
        Some("shadow mode: would write vip-gold")
    );
    assert_eq!(almost[0].record.outcome, "shadow");
    assert_eq!(almost[0].record.email.as_deref(), Some("almost@shop.test"));
    assert_eq!(almost[0].record.tags_decided, ["vip"]);
    assert_eq!(small[0].record.outcome, "no_tags");

    for ticket in [1, 2, 3] {
        assert!(
            app.zendesk_tags(ticket).is_empty(),
            "ticket {ticket} was tagged"
        );
    }
    let requests = app.fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("/users/77")),
        "the requester was not looked up: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "a write reached the helpdesk: {requests:?}"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("ltv_tagger_shadow_decisions_total{tag=\"vip-gold\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ltv_tagger_shadow_decisions_total{tag=\"vip\"} 1"));
    assert!(metrics.contains("ltv_tagger_jobs_total{outcome=\"shadow\"} 2"));
    app.stop().await;
}
