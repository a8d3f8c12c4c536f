//! Leases are set and judged by the state database's clock: a replica whose clock runs 30 s
//! ahead does not take over the jobs another replica holds (on SQLite and PostgreSQL).

use std::time::Duration;

use ltv_tagger::clock::Millis;
use ltv_tagger::domain::{CustomerEmail, Requester, Source, TicketId};
use ltv_tagger::state::{NewEvent, StateStore};

use crate::helpers::{Db, TestDb};

fn event(ticket: u32) -> NewEvent {
    NewEvent {
        source: Source::Zendesk,
        ticket_id: TicketId::parse(&ticket.to_string()).expect("id"),
        event_type: "trigger".into(),
        requester: Some(Requester::Email(
            CustomerEmail::parse("gold@shop.test").expect("email"),
        )),
        ticket_tags: vec![],
        ticket_updated_at: None,
        dedupe_key: format!("skew-{ticket}"),
        body: "{}".into(),
    }
}

async fn a_fast_clock_takes_over_nothing(kind: Db) {
    let db = TestDb::create(kind, "ltv_skew").await;
    let mut raw =
        ltv_tagger::config::RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults");
    raw.state.url = db.url.clone();
    let store = StateStore::connect_lazy(&raw.state).expect("store");
    store.migrate().await.expect("migrate");

    let lease = Duration::from_secs(30);
    // Replica A's clock is right; replica B's runs 30 s (and a little) ahead.
    let a_now = Millis::now;
    let b_now = || Millis::now() + Duration::from_millis(30_500);
    for t in 1..=20 {
        store.enqueue(&event(t), a_now()).await.expect("enqueue");
    }
    let held = store
        .claim("replica-a", 20, lease, a_now())
        .await
        .expect("claim");
    assert_eq!(held.len(), 20);

    // B keeps polling as its workers do: on its clock every lease of A has run out, on the
    // database's none has.
    for _ in 0..10 {
        let taken = store
            .claim("replica-b", 20, lease, b_now())
            .await
            .expect("claim");
        assert!(
            taken.is_empty(),
            "replica B took over {} of replica A's jobs",
            taken.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A still holds every lease: its renewals succeed.
    for job in &held {
        assert!(
            job.renew(lease, a_now()).await.expect("renew"),
            "lease lost"
        );
    }
    // And B, now holding a job of its own, keeps it against A's slower clock too.
    store.enqueue(&event(99), b_now()).await.expect("enqueue");
    let mine = store
        .claim("replica-b", 1, lease, b_now())
        .await
        .expect("claim");
    assert_eq!(mine.len(), 1);
    assert!(store
        .claim("replica-a", 20, lease, a_now() + Duration::from_secs(31))
        .await
        .expect("claim")
        .is_empty());
    assert!(mine[0].renew(lease, b_now()).await.expect("renew"));
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_is_30s_ahead_takes_over_no_job_on_sqlite() {
    a_fast_clock_takes_over_nothing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_is_30s_ahead_takes_over_no_job_on_postgres() {
    a_fast_clock_takes_over_nothing(Db::Postgres).await;
}
