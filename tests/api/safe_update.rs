//! Zendesk safe updates: a write over a concurrent change of the ticket answers 409; the service
//! re-reads the ticket, keeps the tag added meanwhile and writes its own with the fresh stamp.

use fake_helpdesk::Helpdesk;
use ltv_tagger::domain::Source;

use crate::helpers::{spawn_app, AppOptions, Db};

const Z: Helpdesk = Helpdesk::Zendesk;
const STAMP: &str = "2024-05-08T13:09:40Z";

fn event_body(ticket: u64, updated_at: &str) -> String {
    serde_json::json!({
        "type": "zen:event-type:ticket.created",
        "id": format!("ev-safe-{ticket}"),
        "detail": {
            "id": ticket.to_string(),
            "requester_id": "601",
            "tags": ["web"],
            "updated_at": updated_at,
        },
    })
    .to_string()
}

fn trigger_with_stamp(ticket: u64, email: &str, stamp: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "ticket_id": ticket.to_string(),
        "requester_email": email,
        "tags": "web",
    });
    if let Some(stamp) = stamp {
        body["ticket_updated_at"] = stamp.into();
    }
    body.to_string()
}

fn gets_of(app: &crate::helpers::TestApp, ticket: u64) -> usize {
    let path = format!("/api/v2/tickets/{ticket}");
    app.fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

async fn an_agents_edit_between_event_and_write_is_kept_on(state: Db) {
    let app = spawn_app(AppOptions {
        state,
        ..AppOptions::default()
    })
    .await;
    app.fake.add_zendesk_user("601", "gold@shop.test");
    app.fake.set_ticket_tags(Z, "120", &["web"]);
    app.fake.set_ticket_updated_at(Z, "120", STAMP);
    // An agent saves the ticket (adding a tag) after the event was sent, before the write.
    app.fake.change_before_each_write(Z, "120", 1, "escalated");
    let res = app.post_zendesk(&event_body(120, STAMP), None).await;
    assert_eq!(res.status().as_u16(), 202);

    let rows = app.wait_for_audit(Source::Zendesk, 120, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(
        rows[0].attempts, 1,
        "re-read and retried within the attempt"
    );
    assert_eq!(app.zendesk_tags(120), ["escalated", "vip-gold", "web"]);
    assert_eq!(app.fake.count_status(409), 1, "the stale stamp met a 409");
    assert_eq!(gets_of(&app, 120), 1, "the ticket was re-read once");
    assert_eq!(
        app.fake.safe_writes(Z, "120"),
        1,
        "the retry was a safe update with the fresh stamp"
    );
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_edit_between_event_and_write_is_kept_and_the_vip_tag_written_after_a_409() {
    an_agents_edit_between_event_and_write_is_kept_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_edit_between_event_and_write_is_kept_with_a_postgres_state_db() {
    an_agents_edit_between_event_and_write_is_kept_on(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_stamp_is_used_and_a_ticket_that_keeps_changing_is_retried_later_not_lost() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.set_ticket_tags(Z, "121", &["web"]);
    app.fake.set_ticket_updated_at(Z, "121", STAMP);
    // Three edits in a row: every write of the first attempt meets a newer ticket.
    app.fake.change_before_each_write(Z, "121", 3, "escalated");
    app.post_zendesk(
        &trigger_with_stamp(121, "gold@shop.test", Some(STAMP)),
        None,
    )
    .await;

    let rows = app.wait_for_audit(Source::Zendesk, 121, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(
        rows[0].attempts, 2,
        "three tries, then a transient failure and a retry"
    );
    assert_eq!(
        app.fake.count_status(409),
        4,
        "3 in the first attempt, 1 in the second"
    );
    assert_eq!(app.zendesk_tags(121), ["escalated", "vip-gold", "web"]);
    assert_eq!(app.fake.safe_writes(Z, "121"), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_ticket_write_that_also_removes_a_stale_tag_is_safe_and_keeps_the_agents_tag() {
    let app = spawn_app(AppOptions::default()).await;
    // `vip` is stale for a gold customer: the write adds `vip-gold` and removes `vip` in one
    // Update Ticket call.
    app.fake.set_ticket_tags(Z, "124", &["vip", "web"]);
    app.fake.set_ticket_updated_at(Z, "124", STAMP);
    app.fake.change_before_each_write(Z, "124", 1, "escalated");
    let mut body: serde_json::Value =
        serde_json::from_str(&trigger_with_stamp(124, "gold@shop.test", Some(STAMP)))
            .expect("json");
    body["tags"] = "vip web".into();
    app.post_zendesk(&body.to_string(), None).await;

    let rows = app.wait_for_audit(Source::Zendesk, 124, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(app.fake.count_status(409), 1);
    assert_eq!(app.zendesk_tags(124), ["escalated", "vip-gold", "web"]);
    assert_eq!(
        app.fake.ticket_updates(Z, "124"),
        1,
        "one Update Ticket went through"
    );
    assert_eq!(app.fake.safe_writes(Z, "124"), 1);
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_known_stamp_the_write_is_a_plain_one_as_before() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.set_ticket_tags(Z, "122", &["web"]);
    app.fake.set_ticket_updated_at(Z, "122", STAMP);
    app.fake.change_before_each_write(Z, "122", 1, "escalated");
    app.post_zendesk(&trigger_with_stamp(122, "gold@shop.test", None), None)
        .await;

    let rows = app.wait_for_audit(Source::Zendesk, 122, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(app.fake.count_status(409), 0);
    assert_eq!(gets_of(&app, 122), 0, "no re-read");
    assert_eq!(app.fake.safe_writes(Z, "122"), 0);
    assert_eq!(app.zendesk_tags(122), ["escalated", "vip-gold", "web"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_updated_at_is_refused_naming_the_field_and_queues_nothing() {
    let app = spawn_app(AppOptions::default()).await;
    let res = app.post_zendesk(&event_body(123, "yesterday"), None).await;
    assert_eq!(res.status().as_u16(), 400);
    let text = res.text().await.unwrap_or_default();
    assert!(text.contains("detail.updated_at"), "{text}");
    assert_eq!(app.count("job").await, 0);
    app.stop().await;
}
