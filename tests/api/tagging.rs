//! What a shop sees: the tags that reach the helpdesk and the decisions in the audit log.

use std::time::Duration;

use fake_helpdesk::Helpdesk;
use ltv_tagger::domain::Source;

use crate::helpers::{gorgias_body, spawn_app, trigger_body, AppOptions, Db, GORGIAS_TOKEN};

/// (ticket, email as the helpdesk sends it, expected tags, expected outcome, expected LTV)
type Case = (
    u64,
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
);
const CASES: &[Case] = &[
    (1, "gold@shop.test", &["vip-gold"], "tagged", Some("2500")),
    (2, "almost@shop.test", &["vip"], "tagged", Some("2499.5")),
    (3, "pending@shop.test", &["vip"], "tagged", Some("600")),
    (
        4,
        "disputer@shop.test",
        &["dispute"],
        "tagged",
        Some("9000"),
    ),
    (5, "small@shop.test", &[], "no_tags", Some("20")),
    (
        6,
        "  MIXED.case@shop.TEST ",
        &["vip"],
        "tagged",
        Some("700"),
    ),
    (7, "nobody@shop.test", &[], "unknown_customer", Some("0")),
];

async fn tiers_refunds_disputes_and_unknowns_on(orders: Db, state: Db) {
    let app = spawn_app(AppOptions {
        orders,
        state,
        ..Default::default()
    })
    .await;
    for (ticket, email, _, _, _) in CASES {
        let res = app
            .post_zendesk(&trigger_body(*ticket, email, "web_form"), None)
            .await;
        assert_eq!(res.status().as_u16(), 202, "ticket {ticket}");
    }
    for (ticket, email, tags, outcome, ltv) in CASES {
        let rows = app.wait_for_audit(Source::Zendesk, *ticket, 1).await;
        let a = &rows[0].record;
        assert_eq!(a.outcome, *outcome, "ticket {ticket} ({email}): {a:?}");
        assert_eq!(
            app.zendesk_tags(*ticket),
            tags.to_vec(),
            "ticket {ticket} tags at Zendesk"
        );
        assert_eq!(a.tags_written, tags.to_vec(), "ticket {ticket} audit");
        let got = a.ltv.as_deref().map(|l| {
            l.parse::<rust_decimal::Decimal>()
                .expect("decimal")
                .normalize()
                .to_string()
        });
        assert_eq!(got.as_deref(), *ltv, "ticket {ticket} LTV");
        assert_eq!(
            a.email.as_deref(),
            Some(email.trim().to_lowercase().as_str())
        );
    }
    assert_eq!(
        rows_written(&app),
        5,
        "one write per tagged ticket, none for the others"
    );
    app.fake.assert_no_violations();
    app.stop().await;
}

fn rows_written(app: &crate::helpers::TestApp) -> usize {
    (1..=7)
        .map(|t| app.fake.tag_writes(Helpdesk::Zendesk, &t.to_string()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_ltv_net_of_refunds_and_disputes_with_a_sqlite_order_db() {
    tiers_refunds_disputes_and_unknowns_on(Db::Sqlite, Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_ltv_net_of_refunds_and_disputes_with_a_postgres_order_db() {
    tiers_refunds_disputes_and_unknowns_on(Db::Postgres, Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_ltv_net_of_refunds_and_disputes_with_a_mariadb_order_db() {
    tiers_refunds_disputes_and_unknowns_on(Db::Mariadb, Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_works_with_postgres_as_the_state_store() {
    tiers_refunds_disputes_and_unknowns_on(Db::Postgres, Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disputer_keeps_vip_when_dispute_does_not_override() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|r| r.policy.dispute_overrides_vip = false),
        ..Default::default()
    })
    .await;
    app.post_zendesk(&trigger_body(40, "disputer@shop.test", ""), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 40, 1).await;
    assert_eq!(rows[0].record.tags_written, ["vip-gold", "dispute"]);
    assert_eq!(app.zendesk_tags(40), ["dispute", "vip-gold"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_subscription_webhooks_look_the_requester_up() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.add_zendesk_user("8447388090494", "Gold@Shop.Test");
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/zendesk-event-ticket-created.json"
    ))
    .expect("fixture");
    assert_eq!(
        app.post_zendesk(&body, Some("inv-1"))
            .await
            .status()
            .as_u16(),
        202
    );
    let rows = app.wait_for_audit(Source::Zendesk, 35436, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(rows[0].record.email.as_deref(), Some("gold@shop.test"));
    assert_eq!(app.zendesk_tags(35436), ["vip-gold"]);
    let calls = app.fake.calls();
    assert_eq!(
        calls,
        [
            "GET /api/v2/users/8447388090494 200",
            "PUT /api/v2/tickets/35436/tags 200"
        ]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_zendesk_does_not_know_is_recorded_not_retried() {
    let app = spawn_app(AppOptions::default()).await;
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/zendesk-event-ticket-created.json"
    ))
    .expect("fixture");
    app.post_zendesk(&body, None).await;
    let rows = app.wait_for_audit(Source::Zendesk, 35436, 1).await;
    assert_eq!(rows[0].record.outcome, "rejected");
    assert!(
        rows[0]
            .record
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("404"),
        "{:?}",
        rows[0].record
    );
    assert_eq!(app.fake.requests().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_zendesk_delivery_writes_tags_once() {
    let app = spawn_app(AppOptions::default()).await;
    let body = trigger_body(50, "gold@shop.test", "");
    let first = app.post_zendesk(&body, Some("inv-50")).await;
    assert_eq!(first.status().as_u16(), 202);
    app.wait_for_audit(Source::Zendesk, 50, 1).await;
    let again = app.post_zendesk(&body, Some("inv-50")).await;
    assert_eq!(again.status().as_u16(), 202);
    let answer: serde_json::Value = again.json().await.expect("json");
    assert_eq!(answer["status"], "duplicate");
    app.wait_idle(Duration::from_secs(5)).await;
    assert_eq!(app.fake.tag_writes(Helpdesk::Zendesk, "50"), 1);
    assert_eq!(app.count("inbox").await, 1);
    assert_eq!(app.count("job").await, 1);
    assert_eq!(app.count("audit").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_tagged_ticket_is_not_written_again() {
    let app = spawn_app(AppOptions::default()).await;
    app.post_zendesk(
        &trigger_body(60, "gold@shop.test", "vip-gold web_form"),
        None,
    )
    .await;
    let rows = app.wait_for_audit(Source::Zendesk, 60, 1).await;
    assert_eq!(rows[0].record.outcome, "already_tagged");
    assert_eq!(rows[0].record.tags_decided, ["vip-gold"]);
    assert!(rows[0].record.tags_written.is_empty());
    assert!(
        app.fake.requests().is_empty(),
        "no API call: {:?}",
        app.fake.requests()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_honoured_and_the_tag_lands() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.fail_next(2, 429, Some(1));
    let started = std::time::Instant::now();
    app.post_zendesk(&trigger_body(70, "gold@shop.test", ""), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 70, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(rows[0].attempts, 3);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was not honoured twice"
    );
    assert_eq!(app.zendesk_tags(70), ["vip-gold"]);
    assert_eq!(app.fake.count_status(429), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_backoff_until_the_tag_lands() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.fail_next(3, 503, None);
    app.post_gorgias(&gorgias_body(71, "pending@shop.test"), Some(GORGIAS_TOKEN))
        .await;
    let rows = app.wait_for_audit(Source::Gorgias, 71, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(rows[0].attempts, 4);
    assert_eq!(app.fake.tags(Helpdesk::Gorgias, "71"), ["vip"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_ticket_is_recorded_with_zendesks_reason_and_not_retried() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.close_ticket(Helpdesk::Zendesk, "80");
    // The tags endpoint refuses it (422) and so does update_many, the closed tickets' way.
    let why = "Status: closed prevents ticket update";
    app.fake.fail_in_bulk("80", "RecordInvalid", why);
    app.post_zendesk(&trigger_body(80, "gold@shop.test", ""), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 80, 1).await;
    assert_eq!(rows[0].record.outcome, "rejected");
    let detail = rows[0].record.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("422") && detail.contains("closed"),
        "{detail}"
    );
    app.wait_idle(Duration::from_secs(5)).await;
    let writes = app
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(writes, 2, "the tags call and one update_many, not retried");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_token_dead_letters_the_job_with_the_reason() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|r| r.zendesk.api_token = "not-the-token".to_string().into()),
        ..Default::default()
    })
    .await;
    app.post_zendesk(&trigger_body(90, "gold@shop.test", ""), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 90, 1).await;
    assert_eq!(rows[0].record.outcome, "failed");
    let dead = app.store.list_jobs(true, 10).await.expect("jobs");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].last_error.as_deref().unwrap_or("").contains("401"),
        "{:?}",
        dead[0]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gorgias_tickets_get_tags_through_post_names() {
    let app = spawn_app(AppOptions::default()).await;
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gorgias-http-integration-body.json"
    ))
    .expect("fixture");
    let body = body.replace("jane.doe@example.com", "disputer@shop.test");
    assert_eq!(
        app.post_gorgias(&body, Some(GORGIAS_TOKEN))
            .await
            .status()
            .as_u16(),
        202
    );
    let rows = app.wait_for_audit(Source::Gorgias, 4821, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(app.fake.tags(Helpdesk::Gorgias, "4821"), ["dispute"]);
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_one_ticket_waiting_together_are_coalesced_into_one_write() {
    let app = spawn_app(AppOptions::default()).await;
    // A slow helpdesk keeps the first job running while the other events arrive.
    app.fake.set_latency(Duration::from_millis(300));
    let mut answers = Vec::new();
    for i in 0..5 {
        let res = app
            .post_zendesk(
                &trigger_body(95, "gold@shop.test", ""),
                Some(&format!("inv-95-{i}")),
            )
            .await;
        assert_eq!(res.status().as_u16(), 202);
        let json: serde_json::Value = res.json().await.expect("json");
        answers.push(json["status"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        answers.iter().filter(|a| *a == "coalesced").count() >= 3,
        "later events should fold into one waiting job: {answers:?}"
    );
    app.wait_idle(Duration::from_secs(15)).await;
    let writes = app.fake.tag_writes(Helpdesk::Zendesk, "95");
    assert!(writes <= 2, "5 events became {writes} writes");
    assert!(app.count("job").await <= 2, "5 events, at most 2 jobs");
    assert_eq!(
        app.count("inbox").await,
        5,
        "every event is kept in the inbox"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_from_a_concurrent_ticket_update_is_retried_not_dead_lettered() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.fail_next(1, 409, None);
    app.post_zendesk(&trigger_body(96, "gold@shop.test", ""), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 96, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(app.zendesk_tags(96), ["vip-gold"]);
    app.stop().await;
}
