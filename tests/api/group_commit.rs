//! Group commit: webhooks arriving together share one state-DB transaction. Each is answered 202
//! only after the commit that holds it; a failed batch answers 503 to all of its requests and
//! stores none; duplicates inside one batch are still recognised; a SIGKILL in the middle of it
//! loses no acknowledged event.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fake_helpdesk::Helpdesk;
use ltv_tagger::clock::Millis;
use ltv_tagger::config::RawSettings;
use ltv_tagger::domain::{CustomerEmail, Requester, RequesterId, Source, TicketId};
use ltv_tagger::state::{NewEvent, StateStore};
use tokio::task::JoinSet;

use crate::helpers::{
    free_port, post_zendesk_to, rig, spawn_app, trigger_body, wait_until, AppOptions, Db,
    ServeProcess, TestApp, TestDb,
};

const EMAIL: &str = "gold@shop.test";
/// The ticket whose inbox row the state DB refuses while it is poisoned.
const POISON: u64 = 666;

/// Batches of exactly `max_batch` events: the committer waits up to a second for them, so
/// requests sent together land in one transaction even on a loaded machine.
fn gathering(state: Db, max_batch: usize) -> AppOptions {
    AppOptions {
        state,
        tweak: Box::new(move |raw| {
            raw.state.group_commit_window = Duration::from_secs(1);
            raw.state.group_commit_max_batch = max_batch;
        }),
        ..AppOptions::default()
    }
}

/// Makes the state DB refuse any transaction that holds an event of ticket [`POISON`]: SQLite
/// aborts the insert; PostgreSQL fails the commit itself (a deferred constraint trigger).
async fn poison(app: &TestApp) {
    let statements = match app.state_db.kind {
        Db::Sqlite => vec![format!(
            "create trigger poison_inbox before insert on inbox when new.ticket_id = '{POISON}' \
             begin select raise(abort, 'poisoned ticket'); end"
        )],
        _ => vec![
            format!(
                "create function poison_inbox() returns trigger language plpgsql as $$ begin \
                 if new.ticket_id = '{POISON}' then raise exception 'poisoned ticket'; end if; \
                 return null; end $$"
            ),
            "create constraint trigger poison_inbox after insert on inbox deferrable initially \
             deferred for each row execute function poison_inbox()"
                .to_string(),
        ],
    };
    app.state_db.exec(&statements).await;
}

async fn cure(app: &TestApp) {
    let statement = match app.state_db.kind {
        Db::Sqlite => "drop trigger poison_inbox",
        _ => "drop trigger poison_inbox on inbox",
    };
    app.state_db.exec(&[statement.to_string()]).await;
}

/// One answer: status, `Retry-After`, the JSON body.
type Answer = (u16, Option<String>, serde_json::Value);

/// Sends the deliveries (ticket, invocation id) all at once; answers in the order given.
async fn send_together(app: &TestApp, deliveries: &[(u64, &str)]) -> Vec<Answer> {
    let mut set = JoinSet::new();
    for (i, (ticket, invocation)) in deliveries.iter().enumerate() {
        let (http, base) = (app.http.clone(), app.base.clone());
        let (ticket, invocation) = (*ticket, invocation.to_string());
        set.spawn(async move {
            let body = trigger_body(ticket, EMAIL, "");
            let res = post_zendesk_to(&http, &base, &body, Some(&invocation))
                .await
                .expect("request");
            let status = res.status().as_u16();
            let retry = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let json = res.json().await.unwrap_or(serde_json::Value::Null);
            (i, (status, retry, json))
        });
    }
    let mut answers: Vec<(usize, Answer)> = set.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, a)| a).collect()
}

/// `(count, sum)` of the batch-size histogram at `/metrics`.
async fn batches(http: &reqwest::Client, base: &str) -> (f64, f64) {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("ltv_tagger_ingest_commit_batch_size_count"),
        value("ltv_tagger_ingest_commit_batch_size_sum"),
    )
}

async fn a_failed_batch_answers_503_to_all_and_stores_none(state: Db) {
    let app = spawn_app(gathering(state, 4)).await;
    poison(&app).await;
    // The poisoned event comes third: the two before it were already inserted in the batch.
    let deliveries = [
        (661, "inv-661"),
        (662, "inv-662"),
        (POISON, "inv-666"),
        (663, "inv-663"),
    ];
    let answers = send_together(&app, &deliveries).await;
    for (answer, (ticket, _)) in answers.iter().zip(&deliveries) {
        assert_eq!(answer.0, 503, "ticket {ticket}: {answer:?}");
        assert_eq!(
            answer.1.as_deref(),
            Some("5"),
            "ticket {ticket}: Retry-After"
        );
    }
    assert_eq!(
        batches(&app.http, &app.base).await,
        (1.0, 4.0),
        "one batch of 4"
    );
    assert_eq!(
        app.count("inbox").await,
        0,
        "inbox rows of the failed batch"
    );
    assert_eq!(app.count("job").await, 0, "jobs of the failed batch");

    // The helpdesk retries once the state DB is well again: everything is accepted and tagged.
    cure(&app).await;
    let answers = send_together(&app, &deliveries).await;
    assert!(answers.iter().all(|a| a.0 == 202), "{answers:?}");
    assert_eq!(app.count("inbox").await, 4);
    app.wait_idle(Duration::from_secs(30)).await;
    for (ticket, _) in deliveries {
        assert_eq!(app.zendesk_tags(ticket), ["vip-gold"], "ticket {ticket}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_commit_fails_answers_503_to_every_request_and_stores_none_on_sqlite() {
    a_failed_batch_answers_503_to_all_and_stores_none(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_commit_fails_answers_503_to_every_request_and_stores_none_on_postgres() {
    a_failed_batch_answers_503_to_all_and_stores_none(Db::Postgres).await;
}

async fn duplicates_in_one_batch_are_recognised(state: Db) {
    let app = spawn_app(gathering(state, 4)).await;
    // The same delivery twice, another event of the same ticket, and another ticket.
    let deliveries = [(1, "inv-a"), (1, "inv-a"), (1, "inv-b"), (2, "inv-c")];
    let answers = send_together(&app, &deliveries).await;
    assert!(answers.iter().all(|a| a.0 == 202), "{answers:?}");
    assert_eq!(
        batches(&app.http, &app.base).await,
        (1.0, 4.0),
        "one batch of 4"
    );
    let statuses: Vec<&str> = answers
        .iter()
        .map(|a| a.2["status"].as_str().unwrap_or_default())
        .collect();
    let count = |s: &str| statuses.iter().filter(|x| **x == s).count();
    assert_eq!(
        (count("queued"), count("coalesced"), count("duplicate")),
        (2, 1, 1),
        "{statuses:?}"
    );
    // One of the two identical deliveries is the duplicate, whatever order the batch had.
    assert!(
        statuses[0] == "duplicate" || statuses[1] == "duplicate",
        "{statuses:?}"
    );
    assert_eq!(app.count("inbox").await, 3, "inbox rows");
    assert_eq!(app.count("job").await, 2, "jobs");
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(
        app.fake.tag_writes(Helpdesk::Zendesk, "1"),
        1,
        "writes to ticket 1"
    );
    assert_eq!(app.zendesk_tags(1), ["vip-gold"]);
    assert_eq!(app.zendesk_tags(2), ["vip-gold"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_inside_one_batch_are_recognised_on_sqlite() {
    duplicates_in_one_batch_are_recognised(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_inside_one_batch_are_recognised_on_postgres() {
    duplicates_in_one_batch_are_recognised(Db::Postgres).await;
}

async fn sigkill_during_group_commit_loses_no_acknowledged_event(state: Db) {
    const CLIENTS: usize = 32;
    let r = rig(state, |raw| {
        raw.state.group_commit_window = Duration::from_millis(2);
        raw.state.group_commit_max_batch = 128;
    })
    .await;
    let port = free_port();
    let log = r.dir.path().join("serve.log");
    let mut p = ServeProcess::start(&r.config, port, &log, &[]).await;
    let base = p.base();

    // Clients send distinct tickets until the process dies under them.
    let next = Arc::new(AtomicUsize::new(1));
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, accepted_so_far, base) = (next.clone(), accepted_so_far.clone(), base.clone());
        set.spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("http client");
            let mut accepted = Vec::new();
            loop {
                let ticket = next.fetch_add(1, Ordering::SeqCst) as u64;
                let body = trigger_body(ticket, EMAIL, "");
                let inv = format!("inv-{ticket}");
                match post_zendesk_to(&http, &base, &body, Some(&inv)).await {
                    Ok(res) if res.status().as_u16() == 202 => {
                        accepted.push(ticket);
                        accepted_so_far.fetch_add(1, Ordering::SeqCst);
                    }
                    // Not acknowledged (the process died with it in flight): the helpdesk retries.
                    _ => return (accepted, 1usize),
                }
            }
        });
    }
    let http = reqwest::Client::new();
    wait_until(
        Duration::from_secs(60),
        "500 webhooks acknowledged",
        || async { accepted_so_far.load(Ordering::SeqCst) >= 500 },
    )
    .await;
    let (count, sum) = batches(&http, &base).await;
    p.sigkill();
    p.wait_exit(Duration::from_secs(5)).await;

    let mut accepted = Vec::new();
    let mut unanswered = 0;
    for (a, u) in set.join_all().await {
        accepted.extend(a);
        unanswered += u;
    }
    let stored: HashSet<String> = sqlx::query_scalar::<_, String>("select dedupe_key from inbox")
        .fetch_all(r.store.pool())
        .await
        .expect("inbox keys")
        .into_iter()
        .collect();
    let lost: Vec<u64> = accepted
        .iter()
        .copied()
        .filter(|t| !stored.contains(&format!("delivery:inv-{t}")))
        .collect();
    println!(
        "SIGKILL after {} acknowledged webhooks ({count} batches, {:.1} events per batch before \
         the kill); {unanswered} requests in flight; {} events stored; lost {}",
        accepted.len(),
        sum / count.max(1.0),
        stored.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        sum > count,
        "no batch held more than one event: {count} batches, {sum} events"
    );
    r.drop_dbs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_group_commit_loses_no_acknowledged_event_on_sqlite() {
    sigkill_during_group_commit_loses_no_acknowledged_event(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_group_commit_loses_no_acknowledged_event_on_postgres() {
    sigkill_during_group_commit_loses_no_acknowledged_event(Db::Postgres).await;
}

fn event(ticket: u64, key: &str, requester: Option<&str>, tags: &[&str]) -> NewEvent {
    NewEvent {
        source: Source::Zendesk,
        ticket_id: TicketId::parse(&ticket.to_string()).expect("ticket id"),
        event_type: "ticket.updated".into(),
        requester: requester.map(|r| match r.contains('@') {
            true => Requester::Email(CustomerEmail::parse(r).expect("email")),
            false => Requester::Id(RequesterId::parse(r).expect("requester id")),
        }),
        ticket_tags: tags.iter().map(|t| t.to_string()).collect(),
        ticket_updated_at: None,
        dedupe_key: format!("delivery:{key}"),
        body: format!("{{\"ticket_id\":\"{ticket}\"}}"),
    }
}

/// A job as the comparison reads it: ticket, email, requester id, tags, event count, stamp.
type JobRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
);

/// Jobs and inbox rows (key, its job's ticket).
async fn rows(store: &StateStore) -> (Vec<JobRow>, Vec<(String, String)>) {
    let jobs = sqlx::query_as(
        "select ticket_id, requester_email, requester_id, ticket_tags, event_count,
                ticket_updated_at from job
         order by ticket_id",
    )
    .fetch_all(store.pool())
    .await
    .expect("jobs");
    let inbox = sqlx::query_as(
        "select i.dedupe_key, j.ticket_id from inbox i join job j on j.id = i.job_id
         order by i.dedupe_key",
    )
    .fetch_all(store.pool())
    .await
    .expect("inbox");
    (jobs, inbox)
}

async fn a_batch_commits_what_one_transaction_per_event_would(state: Db) {
    let (one, batch) = (
        TestDb::create(state, "ltv_one").await,
        TestDb::create(state, "ltv_batch").await,
    );
    let mut stores = Vec::new();
    for db in [&one, &batch] {
        let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults");
        raw.state.url = db.url.clone();
        let store = StateStore::connect_lazy(&raw.state).expect("store");
        store.migrate().await.expect("migrate");
        // Before the batch: a delivery already stored, and a waiting job for ticket 11.
        store
            .enqueue(
                &event(11, "k0", Some("first@shop.test"), &["old"]),
                Millis::now(),
            )
            .await
            .expect("enqueue");
        stores.push(store);
    }
    let mut events = [
        event(11, "k0", None, &[]),                   // stored before: duplicate
        event(11, "k1", Some("77"), &["a"]),          // coalesced into the waiting job
        event(10, "k2", Some("a@shop.test"), &["x"]), // a new job
        event(10, "k2", Some("a@shop.test"), &["x"]), // the same delivery again: duplicate
        event(10, "k3", Some("5"), &["y", "z"]),      // coalesced, latest tags
        event(12, "k4", None, &[]),                   // a new job, no requester
        event(10, "k5", Some("b@shop.test"), &[]),    // coalesced, latest email
    ];
    // The latest event's stamp wins, even when it has none.
    events[1].ticket_updated_at = Some("2026-12-01T10:00:00Z".into());
    events[4].ticket_updated_at = Some("2026-12-01T10:00:01Z".into());
    let now = Millis::now();
    let mut sequential = Vec::new();
    for ev in &events {
        sequential.push(stores[0].enqueue(ev, now).await.expect("enqueue").status());
    }
    let refs: Vec<&NewEvent> = events.iter().collect();
    let batched: Vec<&str> = stores[1]
        .enqueue_batch(&refs, now)
        .await
        .expect("enqueue_batch")
        .into_iter()
        .map(|e| e.status())
        .collect();
    assert_eq!(
        batched,
        [
            "duplicate",
            "coalesced",
            "queued",
            "duplicate",
            "coalesced",
            "queued",
            "coalesced"
        ]
    );
    assert_eq!(batched, sequential);
    assert_eq!(rows(&stores[1]).await, rows(&stores[0]).await);
    for s in &stores {
        s.pool().close().await;
    }
    one.drop_db().await;
    batch.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_what_one_transaction_per_event_would_on_sqlite() {
    a_batch_commits_what_one_transaction_per_event_would(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_what_one_transaction_per_event_would_on_postgres() {
    a_batch_commits_what_one_transaction_per_event_would(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_on_postgres_sharing_tickets_and_deliveries_never_deadlock() {
    const CLIENTS: usize = 32;
    const PER_CLIENT: usize = 40;
    // Small batches, several committed at once (PostgreSQL: a quarter of the pool, here 5).
    let app = spawn_app(AppOptions {
        state: Db::Postgres,
        tweak: Box::new(|raw| {
            raw.state.group_commit_window = Duration::ZERO;
            raw.state.group_commit_max_batch = 4;
            raw.state.max_connections = 20;
        }),
        ..AppOptions::default()
    })
    .await;
    let mut set = JoinSet::new();
    for c in 0..CLIENTS {
        let (http, base) = (app.http.clone(), app.base.clone());
        set.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..PER_CLIENT {
                // 8 tickets and 200 deliveries shared by all clients, in different orders.
                let n = (c * 7 + i * 13) % 200;
                let body = trigger_body((n % 8) as u64 + 1, EMAIL, "");
                let res = post_zendesk_to(&http, &base, &body, Some(&format!("inv-{n}")))
                    .await
                    .expect("request");
                statuses.push(res.status().as_u16());
            }
            statuses
        });
    }
    let statuses: Vec<u16> = set.join_all().await.into_iter().flatten().collect();
    let refused = statuses.iter().filter(|s| **s != 202).count();
    assert_eq!(
        refused,
        0,
        "{refused} of {} webhooks not answered 202",
        statuses.len()
    );
    let (count, sum) = batches(&app.http, &app.base).await;
    println!(
        "{} webhooks in {count} batches ({sum} events)",
        statuses.len()
    );
    let distinct: HashSet<usize> = (0..CLIENTS)
        .flat_map(|c| (0..PER_CLIENT).map(move |i| (c * 7 + i * 13) % 200))
        .collect();
    assert_eq!(
        app.count("inbox").await,
        distinct.len() as i64,
        "one inbox row per delivery"
    );
    app.wait_idle(Duration::from_secs(60)).await;
    for t in 1..=8 {
        assert_eq!(app.zendesk_tags(t), ["vip-gold"], "ticket {t}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_state_db_migrated_before_the_batch_function_gets_it_on_migrate() {
    let db = TestDb::create(Db::Postgres, "ltv_upgrade").await;
    let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults");
    raw.state.url = db.url.clone();
    let store = StateStore::connect_lazy(&raw.state).expect("store");
    // The schema as the release before the function left it: every migration but the two that
    // create the function.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut older = sqlx::migrate::Migrator::new(dir).await.expect("migrations");
    older.migrations = older
        .migrations
        .iter()
        .filter(|m| !m.description.contains("enqueue batch"))
        .cloned()
        .collect::<Vec<_>>()
        .into();
    older.run(store.pool()).await.expect("older migrations");
    let waiting = event(11, "k0", Some("first@shop.test"), &["old"]);
    store
        .enqueue(&waiting, Millis::now())
        .await
        .expect("enqueue");
    assert!(store.check_ready().await.is_err(), "a migration is pending");

    store.migrate().await.expect("migrate");
    store.check_ready().await.expect("ready after migrate");
    let events = [
        waiting.clone(),
        event(11, "k1", None, &["a"]),
        event(12, "k2", None, &[]),
    ];
    let refs: Vec<&NewEvent> = events.iter().collect();
    let statuses: Vec<&str> = store
        .enqueue_batch(&refs, Millis::now())
        .await
        .expect("enqueue_batch")
        .into_iter()
        .map(|e| e.status())
        .collect();
    assert_eq!(statuses, ["duplicate", "coalesced", "queued"]);
    store.pool().close().await;
    db.drop_db().await;
}
