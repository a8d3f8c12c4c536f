//! What agents see: one tier tag at a time (the service's own stale tags removed, foreign ones
//! kept), rule tags from extra columns on every order-DB backend, custom fields and the note.

use std::time::Duration;

use fake_helpdesk::{Helpdesk, Note};
use ltv_tagger::app::Application;
use ltv_tagger::config::RawSettings;
use ltv_tagger::domain::Source;
use ltv_tagger::helpdesk::FieldIds;
use serde_json::json;

use crate::helpers::{
    gorgias_body, shop_db, spawn_app, test_settings, trigger_body, AppOptions, Db, TestDb,
    GORGIAS_TOKEN, SHOP_QUERY,
};

/// The test shop's query with two more columns: gross paid and refunded amounts.
fn query_with_refund_columns() -> String {
    SHOP_QUERY.replace(
        "count(p.id) as orders,",
        "count(p.id) as orders,
       coalesce(sum(p.amount), 0) as gross,
       coalesce((select sum(r.amount) from refund r
                 join purchase p3 on p3.id = r.purchase_id
                 join customer c4 on c4.id = p3.customer_id
                 where lower(c4.email) = :email), 0) as refunded,",
    )
}

fn serial_returner_rule(raw: &mut RawSettings) {
    raw.orders.query = query_with_refund_columns();
    raw.policy.rules = vec![ltv_tagger::config::RawRule {
        tag: "serial-returner".into(),
        when: "orders >= 1 && refunded / gross >= 0.05".into(),
    }];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_customers_zendesk_ticket_loses_the_services_own_vip_and_keeps_every_foreign_tag(
) {
    let app = spawn_app(AppOptions::default()).await;
    app.fake
        .set_ticket_tags(Helpdesk::Zendesk, "200", &["vip", "web_form", "billing"]);
    app.post_zendesk(
        &trigger_body(200, "gold@shop.test", "vip web_form billing"),
        None,
    )
    .await;
    let rows = app.wait_for_audit(Source::Zendesk, 200, 1).await;
    let a = &rows[0].record;
    assert_eq!(a.outcome, "tagged", "{a:?}");
    assert_eq!(a.tags_written, ["vip-gold"]);
    assert_eq!(
        a.detail.as_deref(),
        Some("removed the policy's stale tags: vip")
    );
    assert_eq!(app.zendesk_tags(200), ["billing", "vip-gold", "web_form"]);
    let calls = app.fake.calls();
    assert_eq!(calls, ["PUT /api/v2/tickets/200 200"]);
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disputer_on_gorgias_loses_the_stale_vip_read_from_the_ticket_and_keeps_foreign_tags() {
    let app = spawn_app(AppOptions::default()).await;
    app.fake.set_ticket_tags(
        Helpdesk::Gorgias,
        "201",
        &["vip", "Billing", "VIP customer"],
    );
    let res = app
        .post_gorgias(
            &gorgias_body(201, "disputer@shop.test"),
            Some(GORGIAS_TOKEN),
        )
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let rows = app.wait_for_audit(Source::Gorgias, 201, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged", "{:?}", rows[0].record);
    assert_eq!(
        app.fake.tags(Helpdesk::Gorgias, "201"),
        ["Billing", "VIP customer", "dispute"]
    );
    let calls = app.fake.routes();
    assert_eq!(
        calls,
        [
            "GET /api/tickets/201/tags",
            "POST /api/tickets/201/tags",
            "DELETE /api/tickets/201/tags"
        ]
    );
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_remove_stale_tags_off_the_service_only_adds() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|raw| raw.policy.remove_stale_tags = false),
        ..Default::default()
    })
    .await;
    app.fake
        .set_ticket_tags(Helpdesk::Zendesk, "202", &["vip", "web_form"]);
    app.post_zendesk(&trigger_body(202, "gold@shop.test", "vip web_form"), None)
        .await;
    app.wait_for_audit(Source::Zendesk, 202, 1).await;
    assert_eq!(app.zendesk_tags(202), ["vip", "vip-gold", "web_form"]);
    app.stop().await;
}

async fn a_rule_tag_lands_from_extra_columns_on(orders: Db) {
    let app = spawn_app(AppOptions {
        orders,
        tweak: Box::new(serial_returner_rule),
        ..Default::default()
    })
    .await;
    // gold: 200.50 refunded of 2700.50 paid (7.4 %); almost: 100.50 of 2600.00 (3.9 %).
    app.fake
        .set_ticket_tags(Helpdesk::Zendesk, "210", &["web_form"]);
    app.fake
        .set_ticket_tags(Helpdesk::Zendesk, "211", &["web_form"]);
    app.post_zendesk(&trigger_body(210, "gold@shop.test", "web_form"), None)
        .await;
    app.post_zendesk(&trigger_body(211, "almost@shop.test", "web_form"), None)
        .await;
    let gold = app.wait_for_audit(Source::Zendesk, 210, 1).await;
    assert_eq!(
        gold[0].record.tags_decided,
        ["vip-gold", "serial-returner"],
        "{orders:?}: {:?}",
        gold[0].record
    );
    assert_eq!(
        app.zendesk_tags(210),
        ["serial-returner", "vip-gold", "web_form"]
    );
    let almost = app.wait_for_audit(Source::Zendesk, 211, 1).await;
    assert_eq!(almost[0].record.tags_decided, ["vip"], "{orders:?}");
    assert_eq!(app.zendesk_tags(211), ["vip", "web_form"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_tag_lands_from_extra_columns_on_sqlite() {
    a_rule_tag_lands_from_extra_columns_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_tag_lands_from_extra_columns_on_postgres() {
    a_rule_tag_lands_from_extra_columns_on(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_tag_lands_from_extra_columns_on_mariadb() {
    a_rule_tag_lands_from_extra_columns_on(Db::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_rule_stops_start_up_naming_the_rule_and_the_key() {
    let fake = fake_helpdesk::FakeHelpdesk::start(Default::default())
        .await
        .expect("fake");
    let state = TestDb::create(Db::Sqlite, "ltv_state").await;
    let shop = shop_db(Db::Sqlite).await;
    let raw = || {
        test_settings(
            &state.url,
            &shop.url,
            &fake,
            &Default::default(),
            true,
            false,
        )
    };

    // A syntax error: refused when the configuration is read.
    let mut bad = raw();
    serial_returner_rule(&mut bad);
    bad.policy.rules[0].when = "orders >= 3 &&".into();
    let err = bad
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("policy.rules[0].when: syntax error"), "{err}");

    // A column the query does not return: refused when the service starts.
    let mut unknown = raw();
    serial_returner_rule(&mut unknown);
    unknown.policy.rules[0].when = "refunds / gross >= 0.5".into();
    let settings = unknown.validate().expect("valid syntax");
    let err = match Application::build(settings).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("policy.rules[0].when: unknown column `refunds`"),
        "{err}"
    );
    assert!(fake.requests().is_empty());
    state.drop_db().await;
    shop.drop_db().await;
}

fn fields_and_note(raw: &mut RawSettings) {
    raw.zendesk.fields = FieldIds {
        ltv: Some(360001),
        tier: Some(360002),
        orders: Some(360003),
        disputes: None,
    };
    raw.zendesk.note_template =
        "ltv-tagger: LTV {ltv} over {orders} orders, {disputes} disputes → {tags}. Why: {reasons}"
            .into();
    raw.gorgias.note_template = "ltv-tagger: LTV {ltv}, {disputes} disputes → {tags}".into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_fields_and_the_note_arrive_in_one_zendesk_call_and_the_note_only_once() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(fields_and_note),
        ..Default::default()
    })
    .await;
    app.fake
        .set_ticket_tags(Helpdesk::Zendesk, "300", &["web_form"]);
    app.post_zendesk(&trigger_body(300, "gold@shop.test", "web_form"), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 300, 1).await;
    let ltv = rows[0].record.ltv.clone().expect("ltv");
    assert_eq!(app.fake.ticket_updates(Helpdesk::Zendesk, "300"), 1);
    assert_eq!(app.fake.requests().len(), 1, "{:?}", app.fake.requests());
    assert_eq!(app.zendesk_tags(300), ["vip-gold", "web_form"]);
    assert_eq!(
        app.fake.ticket_fields(Helpdesk::Zendesk, "300"),
        [
            (360001, json!(ltv)),
            (360002, json!("vip-gold")),
            (360003, json!(2))
        ]
        .into()
    );
    let notes = app.fake.notes(Helpdesk::Zendesk, "300");
    assert_eq!(
        notes,
        [Note {
            body: format!("ltv-tagger: LTV {ltv} over 2 orders, 0 disputes → vip-gold. Why: {ltv} ≥ 2500 → vip-gold"),
            public: false,
        }]
    );

    // An agent removes the tag: the service puts it back, with the fields, without a second note.
    app.fake
        .set_ticket_tags(Helpdesk::Zendesk, "300", &["web_form"]);
    app.post_zendesk(
        &trigger_body(300, "gold@shop.test", "web_form"),
        Some("again"),
    )
    .await;
    app.wait_for_audit(Source::Zendesk, 300, 2).await;
    assert_eq!(app.fake.ticket_updates(Helpdesk::Zendesk, "300"), 2);
    assert_eq!(app.zendesk_tags(300), ["vip-gold", "web_form"]);
    assert_eq!(app.fake.notes(Helpdesk::Zendesk, "300").len(), 1);
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notes_own_update_event_writes_nothing() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(fields_and_note),
        ..Default::default()
    })
    .await;
    app.post_zendesk(&trigger_body(301, "disputer@shop.test", ""), None)
        .await;
    app.wait_for_audit(Source::Zendesk, 301, 1).await;
    assert_eq!(app.fake.notes(Helpdesk::Zendesk, "301").len(), 1);
    let calls = app.fake.requests().len();
    // The update carrying the note fires Zendesk's "ticket updated": the event names the
    // ticket's tags as they are now.
    let now = app.zendesk_tags(301).join(" ");
    app.post_zendesk(
        &trigger_body(301, "disputer@shop.test", &now),
        Some("note-update"),
    )
    .await;
    let rows = app.wait_for_audit(Source::Zendesk, 301, 2).await;
    assert!(
        rows.iter().any(|r| r.record.outcome == "already_tagged"),
        "{rows:?}"
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        app.wait_idle(Duration::from_secs(10)),
    )
    .await
    .expect("idle");
    assert_eq!(
        app.fake.requests().len(),
        calls,
        "{:?}",
        app.fake.requests()
    );
    assert_eq!(app.fake.notes(Helpdesk::Zendesk, "301").len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gorgias_gets_one_internal_note_never_public() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(fields_and_note),
        ..Default::default()
    })
    .await;
    app.post_gorgias(&gorgias_body(302, "gold@shop.test"), Some(GORGIAS_TOKEN))
        .await;
    let rows = app.wait_for_audit(Source::Gorgias, 302, 1).await;
    let ltv = rows[0].record.ltv.clone().expect("ltv");
    assert_eq!(
        app.fake.notes(Helpdesk::Gorgias, "302"),
        [Note {
            body: format!("ltv-tagger: LTV {ltv}, 0 disputes → vip-gold"),
            public: false,
        }]
    );
    // The note's own ticket-updated event: the ticket's tags are read, nothing is written.
    let updated = json!({ "ticket_id": "302", "customer_email": "gold@shop.test", "event": "ticket-message-created" });
    app.post_gorgias(&updated.to_string(), Some(GORGIAS_TOKEN))
        .await;
    let rows = app.wait_for_audit(Source::Gorgias, 302, 2).await;
    assert!(
        rows.iter().any(|r| r.record.outcome == "already_tagged"),
        "{rows:?}"
    );
    assert_eq!(app.fake.notes(Helpdesk::Gorgias, "302").len(), 1);
    assert_eq!(app.fake.tag_writes(Helpdesk::Gorgias, "302"), 1);
    app.fake.assert_no_violations();
    app.stop().await;
}
