//! The job queue itself, driven through `StateStore` with an explicit clock for due times (leases
//! run on the state DB's clock).

use std::ops::Not;
use std::time::Duration;

use ltv_tagger::clock::Millis;
use ltv_tagger::domain::{CustomerEmail, JobId, Outcome, Requester, Source, TicketId};
use ltv_tagger::state::{AuditRecord, Enqueued, Final, NewEvent, StateStore};

use crate::helpers::{Db, TestDb};

fn event(ticket: &str, key: &str) -> NewEvent {
    NewEvent {
        source: Source::Zendesk,
        ticket_id: TicketId::parse(ticket).expect("id"),
        event_type: "trigger".into(),
        requester: Some(Requester::Email(
            CustomerEmail::parse("gold@shop.test").expect("email"),
        )),
        ticket_tags: vec![],
        ticket_updated_at: None,
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

/// Claims with `owner` (due time `now`) until the claim returns jobs, polling while the leases it
/// waits for are still held on the state DB's clock.
async fn claim_when_expired(
    store: &StateStore,
    owner: &str,
    lease: Duration,
    now: Millis,
) -> Vec<ltv_tagger::state::LeasedJob> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = store.claim(owner, 10, lease, now).await.expect("claim");
        if !jobs.is_empty() {
            return jobs;
        }
        assert!(std::time::Instant::now() < deadline, "no lease expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Due times (`run_at`) follow the explicit clock; leases run on the state DB's own clock (issue
/// 9, item 11), so a lease is made to expire by letting a short one run out, polled for.
async fn one_ticket_never_runs_twice_at_once(kind: Db) {
    let (store, db) = store(kind).await;
    let lease = Duration::from_secs(1);
    let t0 = Millis::now();
    let ms = Duration::from_millis;
    assert!(matches!(
        store.enqueue(&event("7", "a"), t0).await.expect("enqueue"),
        Enqueued::Queued(_)
    ));
    let first = store.claim("worker-a", 10, lease, t0).await.expect("claim");
    assert_eq!(first.len(), 1);
    // A later event for the same ticket waits while the first job runs…
    store
        .enqueue(&event("7", "b"), t0 + ms(1))
        .await
        .expect("enqueue");
    assert!(store
        .claim("worker-b", 10, lease, t0 + ms(2))
        .await
        .expect("claim")
        .is_empty());
    // Once the first job's lease has expired (its worker died), the waiting job takes over and
    // the expired one is folded into it: never both.
    let after = t0 + ms(3);
    let next = claim_when_expired(&store, "worker-b", Duration::from_secs(30), after).await;
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].id, first[0].id);
    assert!(store
        .claim("worker-c", 10, lease, after + ms(1))
        .await
        .expect("claim")
        .is_empty());
    // An expired job with nothing waiting behind it simply runs again.
    store
        .enqueue(&event("8", "c"), after)
        .await
        .expect("enqueue");
    let eight = store
        .claim("worker-c", 10, lease, after + ms(2))
        .await
        .expect("claim");
    assert_eq!(eight.len(), 1);
    let again = claim_when_expired(&store, "worker-d", lease, after + ms(3)).await;
    let ids: Vec<JobId> = again.iter().map(|j| j.id).collect();
    assert!(ids.contains(&eight[0].id), "{ids:?}");
    assert_eq!(
        again
            .iter()
            .find(|j| j.id == eight[0].id)
            .map(|j| j.attempts),
        Some(2)
    );
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

/// The state of the job of `ticket` (the newest) and its attempts.
async fn job_of(store: &StateStore, ticket: &str) -> (String, i64) {
    sqlx::query_as("select state, attempts from job where ticket_id = $1 order by id desc limit 1")
        .bind(ticket)
        .fetch_one(store.pool())
        .await
        .expect("job")
}

/// A lease is its owner and the attempt it was claimed for: once it expired and the same
/// process claimed the job again, the old handle renews, settles and releases nothing; the
/// batch renewal and release (bulk rounds) hold to the same rule, in one statement each.
async fn a_lease_claimed_again_by_its_owner_is_another_lease(kind: Db) {
    let (store, db) = store(kind).await;
    let t0 = Millis::now();
    for (ticket, key) in [("7", "a"), ("8", "b")] {
        store
            .enqueue(&event(ticket, key), t0)
            .await
            .expect("enqueue");
    }
    let lease = Duration::from_secs(30);
    let old = store
        .claim("worker-a", 10, Duration::from_secs(1), t0)
        .await
        .expect("claim");
    assert_eq!(old.len(), 2);
    let mut new = Vec::new();
    while new.len() < 2 {
        new.extend(claim_when_expired(&store, "worker-a", lease, t0).await);
    }
    assert!(new.iter().all(|j| j.attempts == 2), "{new:?}");

    let now = Millis::now();
    assert!(old[0].renew(lease, now).await.expect("renew").not());
    assert!(store
        .renew_leases(&old, lease, now)
        .await
        .expect("renew")
        .is_empty());
    let audit = AuditRecord::new(Outcome::Tagged, None);
    assert!(old[0]
        .finish(Final::Done, &audit, now)
        .await
        .expect("finish")
        .not());
    old[1].retry(now, "stale", now).await.expect("retry");
    store.release_leases(&old, now).await.expect("release");
    for ticket in ["7", "8"] {
        assert_eq!(
            job_of(&store, ticket).await,
            ("running".into(), 2),
            "{ticket}"
        );
    }

    let mut renewed = store.renew_leases(&new, lease, now).await.expect("renew");
    renewed.sort();
    let mut ids: Vec<JobId> = new.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(renewed, ids);
    // A newer event for ticket 8 waits: its released job is folded into it; 7's waits again,
    // the attempt not counted.
    store.enqueue(&event("8", "c"), now).await.expect("enqueue");
    store.release_leases(&new, now).await.expect("release");
    assert_eq!(job_of(&store, "7").await, ("queued".into(), 1));
    let eight: Vec<(String,)> =
        sqlx::query_as("select state from job where ticket_id = '8' order by id")
            .fetch_all(store.pool())
            .await
            .expect("jobs");
    assert_eq!(eight, [("merged".into(),), ("queued".into(),)]);
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_claimed_again_by_its_owner_is_another_lease_on_sqlite() {
    a_lease_claimed_again_by_its_owner_is_another_lease(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_claimed_again_by_its_owner_is_another_lease_on_postgres() {
    a_lease_claimed_again_by_its_owner_is_another_lease(Db::Postgres).await;
}

async fn the_ready_backlog_is_counted_up_to_what_is_asked(kind: Db) {
    let (store, db) = store(kind).await;
    let now = Millis::now();
    for t in 0..5 {
        store
            .enqueue(&event(&(500 + t).to_string(), &format!("ready-{t}")), now)
            .await
            .expect("enqueue");
    }
    let ready = |up_to| store.ready_jobs(Source::Zendesk, now, up_to);
    assert_eq!(
        ready(3).await.expect("count"),
        3,
        "a larger backlog answers the bound"
    );
    assert_eq!(ready(5).await.expect("count"), 5);
    assert_eq!(
        ready(100).await.expect("count"),
        5,
        "a smaller one its size"
    );
    assert_eq!(
        store
            .ready_jobs(Source::Gorgias, now, 100)
            .await
            .expect("count"),
        0,
        "only the helpdesk asked about"
    );
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ready_backlog_is_counted_up_to_what_is_asked_on_sqlite() {
    the_ready_backlog_is_counted_up_to_what_is_asked(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ready_backlog_is_counted_up_to_what_is_asked_on_postgres() {
    the_ready_backlog_is_counted_up_to_what_is_asked(Db::Postgres).await;
}
