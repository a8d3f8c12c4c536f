//! Bad input that used to be accepted and fail later: refused at ingest with an error naming the
//! field (requester ids, long emails), and the later requester winning when events coalesce.

use ltv_tagger::clock::Millis;
use ltv_tagger::domain::{CustomerEmail, Outcome, Requester, RequesterId};
use ltv_tagger::state::Enqueued;

use crate::helpers::{spawn_app, AppOptions, Db, TestApp, GORGIAS_TOKEN};
use crate::worker_step::{event, setup_on};

async fn refused(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

async fn assert_nothing_queued(app: &TestApp) {
    assert_eq!(app.count("inbox").await, 0, "inbox rows");
    assert_eq!(app.count("job").await, 0, "jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requester_ids_that_are_not_positive_integers_get_400_naming_the_field() {
    let app = spawn_app(AppOptions::default()).await;
    let bad = [
        serde_json::json!("abc"),
        serde_json::json!(-7),
        serde_json::json!("../../x"),
        serde_json::json!("0"),
    ];
    for id in &bad {
        let trigger = serde_json::json!({ "ticket_id": "5", "requester_id": id }).to_string();
        let (status, error) = refused(app.post_zendesk(&trigger, None).await).await;
        assert_eq!(status, 400, "trigger requester_id {id}");
        assert!(
            error.contains("requester_id: requester id must be a positive integer"),
            "{id}: {error}"
        );
        let event = serde_json::json!({
            "type": "zen:event-type:ticket.created",
            "detail": { "id": "5", "requester_id": id },
        })
        .to_string();
        let (status, error) = refused(app.post_zendesk(&event, None).await).await;
        assert_eq!(status, 400, "detail.requester_id {id}");
        assert!(
            error.contains("detail.requester_id: requester id must be a positive integer"),
            "{id}: {error}"
        );
        let gorgias = serde_json::json!({ "ticket_id": "5", "customer_id": id }).to_string();
        let (status, error) = refused(app.post_gorgias(&gorgias, Some(GORGIAS_TOKEN)).await).await;
        assert_eq!(status, 400, "customer_id {id}");
        assert!(
            error.contains("customer_id: requester id must be a positive integer"),
            "{id}: {error}"
        );
    }
    // Garbage beside a good email is refused too: the body is not what the README says.
    let trigger = serde_json::json!({ "ticket_id": "5", "requester_email": "gold@shop.test", "requester_id": "abc" });
    let (status, _) = refused(app.post_zendesk(&trigger.to_string(), None).await).await;
    assert_eq!(status, 400);
    assert_nothing_queued(&app).await;
    assert!(app.fake.requests().is_empty(), "{:?}", app.fake.requests());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_up_to_254_characters_are_queued_and_longer_ones_get_400_saying_so() {
    let app = spawn_app(AppOptions::default()).await;
    let local = "a".repeat(64);
    let domain = format!(
        "{}.shop.test",
        "b".repeat(254 - 64 - 1 - ".shop.test".len())
    );
    let longest = format!("{local}@{domain}");
    assert_eq!(longest.len(), 254);
    let too_long = format!("{local}@c{domain}");
    let (status, error) = refused(
        app.post_zendesk(
            &serde_json::json!({ "ticket_id": "6", "requester_email": too_long }).to_string(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.contains("requester_email is 255 characters long, more than the 254 allowed"),
        "{error}"
    );
    let (status, error) = refused(
        app.post_gorgias(
            &serde_json::json!({ "ticket_id": "6", "customer_email": 42 }).to_string(),
            Some(GORGIAS_TOKEN),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.contains("customer_email must be a string, got 42"),
        "{error}"
    );
    assert_nothing_queued(&app).await;

    let res = app
        .post_zendesk(
            &serde_json::json!({ "ticket_id": "6", "requester_email": longest }).to_string(),
            None,
        )
        .await;
    assert_eq!(res.status().as_u16(), 202);
    app.stop().await;
}

async fn later_requester_wins_when_events_coalesce(state: Db) {
    let s = setup_on(state, None).await;
    s.fake.add_zendesk_user("77", "small@shop.test");
    let email = |e: &str| Requester::Email(CustomerEmail::parse(e).expect("email"));
    let store = &s.worker.store;
    let now = Millis::now();
    // Ticket 61: first the VIP's email, then an event naming user 77 (a small customer).
    let mut first = event("61", email("gold@shop.test"));
    first.dedupe_key = "t61-a".into();
    let mut second = event("61", Requester::Id(RequesterId::parse("77").expect("id")));
    second.dedupe_key = "t61-b".into();
    // Ticket 62: first user 77, then the VIP's email.
    let mut third = event("62", Requester::Id(RequesterId::parse("77").expect("id")));
    third.dedupe_key = "t62-a".into();
    let mut fourth = event("62", email("gold@shop.test"));
    fourth.dedupe_key = "t62-b".into();
    assert!(matches!(
        store.enqueue(&first, now).await,
        Ok(Enqueued::Queued(_))
    ));
    assert!(matches!(
        store.enqueue(&second, now).await,
        Ok(Enqueued::Coalesced(_))
    ));
    assert!(matches!(
        store.enqueue(&third, now).await,
        Ok(Enqueued::Queued(_))
    ));
    assert!(matches!(
        store.enqueue(&fourth, now).await,
        Ok(Enqueued::Coalesced(_))
    ));

    let mut outcomes = Vec::new();
    while let Some(done) = s.worker.run_once().await.expect("state DB") {
        outcomes.push(done);
    }
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    let audit = store.audit(None, 10).await.expect("audit");
    let email_of = |ticket: &str| {
        audit
            .iter()
            .find(|r| r.ticket_id.to_string() == ticket)
            .and_then(|r| r.record.email.clone())
    };
    assert_eq!(email_of("61").as_deref(), Some("small@shop.test"));
    assert_eq!(email_of("62").as_deref(), Some("gold@shop.test"));
    assert!(s
        .fake
        .tags(fake_helpdesk::Helpdesk::Zendesk, "61")
        .is_empty());
    assert_eq!(
        s.fake.tags(fake_helpdesk::Helpdesk::Zendesk, "62"),
        ["vip-gold"]
    );
    assert!(outcomes.contains(&Some(Outcome::Tagged)));
    for db in s.dbs {
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_later_event_naming_another_requester_wins_when_coalesced_on_sqlite() {
    later_requester_wins_when_events_coalesce(Db::Sqlite).await;
}

#[tokio::test]
async fn a_later_event_naming_another_requester_wins_when_coalesced_on_postgres() {
    later_requester_wins_when_events_coalesce(Db::Postgres).await;
}
