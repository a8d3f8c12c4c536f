//! The job queue itself, driven through `StateStore` with an explicit clock.

use std::time::Duration;

use ltv_tagger::domain::{Source, TicketId};
use ltv_tagger::store::{Enqueued, NewEvent, StateStore};

use crate::helpers::{Db, TestDb};

fn event(ticket: &str, key: &str) -> NewEvent {
    NewEvent {
        source: Source::Zendesk,
        ticket_id: TicketId::parse(ticket).expect("id"),
        event_type: "trigger".into(),
        requester_email: Some("gold@shop.test".into()),
        requester_id: None,
        ticket_tags: vec![],
        dedupe_key: key.into(),
        body: "{}".into(),
    }
}

async fn store(kind: Db) -> (StateStore, TestDb) {
    let db = TestDb::create(kind, "ltv_queue").await;
    let mut raw =
        ltv_tagger::config::RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults");
    raw.state.url = db.url.clone();
    let store = StateStore::connect_lazy(&raw.state).expect("store");
    store.migrate().await.expect("migrate");
    (store, db)
}

async fn one_ticket_never_runs_twice_at_once(kind: Db) {
    let (store, db) = store(kind).await;
    let lease = Duration::from_secs(30);
    let t0 = 1_000_000;
    assert!(matches!(
        store.enqueue(&event("7", "a"), t0).await.expect("enqueue"),
        Enqueued::Accepted { .. }
    ));
    let first = store.claim("worker-a", 10, lease, t0).await.expect("claim");
    assert_eq!(first.len(), 1);
    // A later event for the same ticket waits while the first job runs…
    store
        .enqueue(&event("7", "b"), t0 + 1)
        .await
        .expect("enqueue");
    assert!(store
        .claim("worker-b", 10, lease, t0 + 2)
        .await
        .expect("claim")
        .is_empty());
    // …and still waits once the first job's lease has expired: that job is reclaimed first.
    let after = t0 + 31_000;
    let reclaimed = store
        .claim("worker-b", 10, lease, after)
        .await
        .expect("claim");
    assert_eq!(
        reclaimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        [first[0].id]
    );
    assert!(store
        .claim("worker-c", 10, lease, after + 1)
        .await
        .expect("claim")
        .is_empty());
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_never_runs_beside_an_expired_one_for_its_ticket_on_sqlite() {
    one_ticket_never_runs_twice_at_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_never_runs_beside_an_expired_one_for_its_ticket_on_postgres() {
    one_ticket_never_runs_twice_at_once(Db::Postgres).await;
}
