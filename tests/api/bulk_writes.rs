//! Bulk tag writes on Zendesk: a backlog the budget cannot clear singly within
//! `zendesk.bulk_after` goes through `update_many`, each job settled from its own ticket's result,
//! within the fake's rate limit and 30-job limit; closed tickets are tagged through it; a backlog
//! the budget clears singly within `bulk_after` keeps the single tags endpoint, one ticket more
//! does not.

use std::sync::Arc;
use std::time::Duration;

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig, Helpdesk as Vendor};
use ltv_tagger::clock::Millis;
use ltv_tagger::domain::{CustomerEmail, Requester, Source};
use ltv_tagger::state::AuditRow;
use ltv_tagger::worker::Worker;
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app, trigger_body, wait_until, AppOptions, Db, TestDb};
use crate::worker_step::{event, setup_with, Setup};

/// The fake's limit and the service's budget: 2 tickets clear singly within `bulk_after = 1s`.
const PER_MINUTE: u32 = 120;

/// A worker of our own, running, and what it works against.
struct Rig {
    worker: Arc<Worker>,
    fake: FakeHelpdesk,
    dbs: Vec<TestDb>,
    stop: CancellationToken,
}

impl Rig {
    async fn enqueue(&self, tickets: impl IntoIterator<Item = u64>) {
        for n in tickets {
            let email = if n % 2 == 0 {
                "gold@shop.test"
            } else {
                "pending@shop.test"
            };
            let who = Requester::Email(CustomerEmail::parse(email).expect("email"));
            self.worker
                .store
                .enqueue(&event(&n.to_string(), who), Millis::now())
                .await
                .expect("enqueue");
        }
    }

    /// Starts the worker on what is queued.
    fn start(&self) {
        tokio::spawn(
            self.worker
                .clone()
                .run(self.stop.clone(), Duration::from_secs(5)),
        );
    }

    async fn finish(self) {
        self.stop.cancel();
        for db in self.dbs {
            db.drop_db().await;
        }
    }
}

/// A worker whose Zendesk budget is [`PER_MINUTE`], started with `jobs` already queued (ticket
/// `n` for `gold@` when even, `pending@` when odd: two tag sets), oldest first.
async fn backlog(db: Db, jobs: u64, prepare: impl FnOnce(&FakeHelpdesk)) -> Rig {
    backlog_after(db, jobs, Duration::from_secs(1), prepare).await
}

/// [`backlog`] with `zendesk.bulk_after` set to `bulk_after`.
async fn backlog_after(
    db: Db,
    jobs: u64,
    bulk_after: Duration,
    prepare: impl FnOnce(&FakeHelpdesk),
) -> Rig {
    let rig = unstarted(db, PER_MINUTE, bulk_after, prepare).await;
    rig.enqueue(1..=jobs).await;
    rig.start();
    rig
}

/// A worker not started yet, whose Zendesk budget (and the fake's limit) is `per_minute`.
async fn unstarted(
    db: Db,
    per_minute: u32,
    bulk_after: Duration,
    prepare: impl FnOnce(&FakeHelpdesk),
) -> Rig {
    let cfg = FakeHelpdeskConfig {
        zendesk_limit_per_minute: Some(per_minute),
        ..FakeHelpdeskConfig::default()
    };
    let tweak = |raw: &mut ltv_tagger::config::RawSettings| {
        raw.zendesk.requests_per_minute = per_minute;
        raw.zendesk.bulk_after = bulk_after;
    };
    let Setup { worker, fake, dbs } = setup_with(db, cfg, tweak, None).await;
    fake.set_bulk_ticket_time(Duration::from_millis(2));
    prepare(&fake);
    Rig {
        worker: Arc::new(worker),
        fake,
        dbs,
        stop: CancellationToken::new(),
    }
}

async fn audit_of(s: &Rig, n: u64) -> Vec<AuditRow> {
    let id = ltv_tagger::domain::TicketId::parse(&n.to_string()).expect("id");
    s.worker
        .store
        .audit(Some((Source::Zendesk, id)), 10)
        .await
        .expect("audit")
}

async fn wait_all_audited(s: &Rig, jobs: u64) {
    wait_until(
        Duration::from_secs(120),
        "an audit row for every job",
        || async {
            s.worker
                .store
                .audit(None, 100_000)
                .await
                .expect("audit")
                .len() as u64
                >= jobs
        },
    )
    .await;
}

/// Tickets `1..=jobs` carry their tag set (odd `vip`, even `vip-gold`) and their job's latest audit
/// row says `tagged`.
async fn assert_all_tagged(s: &Rig, jobs: u64) {
    for n in 1..=jobs {
        let rows = audit_of(s, n).await;
        assert_eq!(
            rows[0].record.outcome, "tagged",
            "ticket {n}: {:?}",
            rows[0]
        );
        let want = if n % 2 == 0 { "vip-gold" } else { "vip" };
        assert_eq!(
            s.fake.tags(Vendor::Zendesk, &n.to_string()),
            [want],
            "ticket {n}"
        );
    }
}

fn calls(s: &Rig, path_end: &str) -> usize {
    s.fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(path_end) && r.status == 200)
        .count()
}

/// Two tag sets over `jobs` tickets, 2 left to single writes: the rest in a few bulk calls.
async fn a_backlog_clears_through_update_many_on(db: Db, jobs: u64) {
    let s = backlog(db, jobs, |_| {}).await;
    wait_all_audited(&s, jobs).await;
    for n in 1..=jobs {
        let want = if n % 2 == 0 { "vip-gold" } else { "vip" };
        assert_eq!(
            s.fake.tags(Vendor::Zendesk, &n.to_string()),
            [want],
            "ticket {n}"
        );
        let rows = audit_of(&s, n).await;
        assert_eq!(rows.len(), 1, "ticket {n}: one audit row");
        assert_eq!(
            rows[0].record.outcome, "tagged",
            "ticket {n}: {:?}",
            rows[0]
        );
        assert_eq!(rows[0].record.tags_written, [want], "ticket {n}");
        assert_eq!(rows[0].record.tags_decided, [want], "ticket {n}");
    }
    let (bulk, single) = (calls(&s, "/update_many.json"), calls(&s, "/tags"));
    assert!(
        bulk >= 3,
        "two tag sets, {} tickets in bulk: at least 3 update_many calls ({bulk})",
        jobs - 2
    );
    let all = s.fake.requests().len();
    assert!(
        all * 10 < jobs as usize,
        "{all} calls for {jobs} tickets ({bulk} bulk, {single} single)"
    );
    s.fake.assert_no_violations();
    assert_eq!(s.fake.rate_limited(), 0);
    assert!(s.fake.max_active_bulk_jobs() <= 30);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_over_the_budget_is_tagged_through_update_many_in_fewer_calls_than_tickets() {
    a_backlog_clears_through_update_many_on(Db::Sqlite, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_over_the_budget_is_tagged_through_update_many_with_state_on_postgres() {
    a_backlog_clears_through_update_many_on(Db::Postgres, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_results_in_one_job_status_settle_each_job_from_its_own_ticket() {
    const JOBS: u64 = 20;
    let s = backlog(Db::Sqlite, JOBS, |fake| {
        // Oldest first: tickets 1 and 2 are in the bulk round, not among the 2 left to singles.
        fake.fail_in_bulk("1", "RecordInvalid", "Tags: too many tags on ticket");
        fake.delete_ticket(Vendor::Zendesk, "2");
    })
    .await;
    wait_all_audited(&s, JOBS).await;
    // Ticket 1 failed inside the job: retried on its own through the tags endpoint.
    let one = audit_of(&s, 1).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].record.outcome, "tagged");
    assert_eq!(one[0].attempts, 2, "the bulk attempt, then its own");
    assert_eq!(s.fake.tags(Vendor::Zendesk, "1"), ["vip"]);
    let single_for_1 = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/tickets/1/tags")
        .count();
    assert_eq!(single_for_1, 1);
    // Ticket 2 is gone: recorded with Zendesk's reason, not retried.
    let two = audit_of(&s, 2).await;
    assert_eq!(two[0].record.outcome, "rejected");
    let detail = two[0].record.detail.clone().unwrap_or_default();
    assert!(detail.contains("TicketNotFound"), "{detail}");
    assert_eq!(two[0].attempts, 1);
    for n in 3..=JOBS {
        assert_eq!(
            audit_of(&s, n).await[0].record.outcome,
            "tagged",
            "ticket {n}"
        );
    }
    s.fake.assert_no_violations();
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_status_sends_all_its_jobs_back_to_be_retried_alone() {
    const JOBS: u64 = 12;
    let s = backlog(Db::Sqlite, JOBS, |fake| fake.doom_next_bulk_job("failed")).await;
    wait_all_audited(&s, JOBS).await;
    let mut retried = 0;
    for n in 1..=JOBS {
        let rows = audit_of(&s, n).await;
        assert_eq!(rows[0].record.outcome, "tagged", "ticket {n}");
        retried += usize::from(rows[0].attempts == 2);
    }
    // 10 tickets in the round, one job per tag set: the failed one's 5 are retried alone.
    assert_eq!(s.fake.bulk_jobs(), 2);
    assert_eq!(retried, 5, "every ticket of the failed job, retried");
    s.fake.assert_no_violations();
    s.finish().await;
}

/// The tickets of [`polls_answered`].
const POLLED_JOBS: u64 = 20;

/// [`POLLED_JOBS`] tickets written in two bulk jobs that stay working ~2 s (several polls each);
/// once both are queued, the next `n` requests are answered `status`. Returns once every job has
/// its audit row, after checking that a job-status poll got that answer.
async fn polls_answered(status: u16, n: u32) -> Rig {
    let s = backlog(Db::Sqlite, POLLED_JOBS, |fake| {
        fake.set_bulk_ticket_time(Duration::from_millis(200));
    })
    .await;
    wait_until(Duration::from_secs(60), "both bulk jobs queued", || async {
        s.fake.bulk_jobs() >= 2
    })
    .await;
    s.fake.fail_next(n, status, None);
    wait_all_audited(&s, POLLED_JOBS).await;
    assert!(
        s.fake
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/api/v2/job_statuses/") && r.status == status),
        "{:?}",
        s.fake.requests()
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_meets_a_server_error_is_tried_again_later_and_no_job_is_retried() {
    let s = polls_answered(503, 2).await;
    for n in 1..=POLLED_JOBS {
        let rows = audit_of(&s, n).await;
        assert_eq!(rows[0].record.outcome, "tagged", "ticket {n}");
        assert_eq!(
            rows[0].attempts, 1,
            "ticket {n}: the poll was retried, not the job"
        );
    }
    assert_eq!(s.fake.bulk_jobs(), 2, "no job queued twice");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_status_gone_404_retries_its_tickets_instead_of_rejecting_them() {
    // Zendesk forgets job statuses after a while: a 404 says nothing about the tickets.
    let s = polls_answered(404, 1).await;
    assert_all_tagged(&s, POLLED_JOBS).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_another_client_holds_all_30_job_slots_the_bulk_write_waits_and_loses_nothing() {
    const JOBS: u64 = 30;
    let s = backlog(Db::Sqlite, 0, |_| {}).await;
    // Another client (a replica, an admin's script) fills the account's 30 job slots for ~12 s (the service's own call waits for its budget behind the single writes in flight).
    s.fake.set_bulk_ticket_time(Duration::from_secs(12));
    let http = reqwest::Client::new();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "agent@example.com/token:fake-zendesk-api-token"
        )
    );
    for n in 0..30 {
        let res = http
            .put(format!(
                "{}/api/v2/tickets/update_many.json?ids={}",
                s.fake.base_url(),
                9000 + n
            ))
            .header("Authorization", &auth)
            .json(&serde_json::json!({ "ticket": { "additional_tags": ["other"] } }))
            .send()
            .await
            .expect("update_many");
        assert_eq!(res.status().as_u16(), 200);
    }
    s.fake.set_bulk_ticket_time(Duration::from_millis(2));
    s.enqueue(1..=JOBS).await;
    wait_all_audited(&s, JOBS).await;
    for n in 1..=JOBS {
        let want = if n % 2 == 0 { "vip-gold" } else { "vip" };
        assert_eq!(
            audit_of(&s, n).await[0].record.outcome,
            "tagged",
            "ticket {n}"
        );
        assert_eq!(s.fake.tags(Vendor::Zendesk, &n.to_string()), [want]);
    }
    let (full, others): (Vec<_>, Vec<_>) = s
        .fake
        .violations()
        .into_iter()
        .partition(|v| v.contains("over the limit of 30 queued"));
    let seen = s.fake.calls();
    assert!(
        !full.is_empty(),
        "the service's update_many met TooManyJobs (the test's premise): {seen:?}"
    );
    assert!(others.is_empty(), "{others:?}");
    assert!(s.fake.max_active_bulk_jobs() <= 30);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_ticket_the_tags_endpoint_refuses_is_tagged_through_update_many() {
    let app = spawn_app(AppOptions {
        gorgias: false,
        ..AppOptions::default()
    })
    .await;
    app.fake.close_ticket(Vendor::Zendesk, "80");
    app.post_zendesk(&trigger_body(80, "gold@shop.test", ""), None)
        .await;
    let rows = app.wait_for_audit(Source::Zendesk, 80, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged", "{:?}", rows[0]);
    assert_eq!(rows[0].record.tags_written, ["vip-gold"]);
    assert_eq!(app.zendesk_tags(80), ["vip-gold"]);
    let calls = app.fake.calls();
    assert_eq!(calls[0], "PUT /api/v2/tickets/80/tags 422");
    assert_eq!(calls[1], "PUT /api/v2/tickets/update_many.json 200");
    assert!(
        calls[2..]
            .iter()
            .all(|c| c.starts_with("GET /api/v2/job_statuses/")),
        "{calls:?}"
    );
    app.fake.assert_no_violations();
    app.stop().await;
}

/// `zendesk.bulk_after` for the threshold: [`PER_MINUTE`] clears 120 × 1.25 / 60 = 2.5 tickets
/// singly within it, 2 once floored (a ticket is written whole or not at all).
const THRESHOLD_BULK_AFTER: Duration = Duration::from_millis(1250);

/// `jobs` queued before the worker starts, so its first look at the backlog sees them all: the
/// tickets written singly (through their tags endpoint) and the `update_many` calls, once every
/// job is tagged.
async fn threshold_side(jobs: u64) -> (Vec<u64>, usize) {
    let s = backlog_after(Db::Sqlite, jobs, THRESHOLD_BULK_AFTER, |_| {}).await;
    wait_all_audited(&s, jobs).await;
    assert_all_tagged(&s, jobs).await;
    let routes = s.fake.routes();
    let single: Vec<u64> = (1..=jobs)
        .filter(|n| routes.contains(&format!("PUT /api/v2/tickets/{n}/tags")))
        .collect();
    let bulk = calls(&s, "/update_many.json");
    let singles = routes.iter().filter(|r| r.ends_with("/tags")).count();
    assert_eq!(
        singles,
        single.len(),
        "one tag write per ticket: {routes:?}"
    );
    s.fake.assert_no_violations();
    s.finish().await;
    (single, bulk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_the_budget_clears_within_bulk_after_keeps_the_single_tags_endpoint() {
    // Exactly what the budget clears singly within `bulk_after`: nothing goes bulk.
    let (single, bulk) = threshold_side(2).await;
    assert_eq!(single, [1, 2]);
    assert_eq!(bulk, 0, "no update_many call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ticket_beyond_what_the_budget_clears_within_bulk_after_goes_through_update_many() {
    // One more than the budget clears singly: that one (the oldest) in one update_many call, the
    // others singly.
    let (single, bulk) = threshold_side(3).await;
    assert_eq!(single, [2, 3], "ticket 1 went bulk");
    assert_eq!(bulk, 1, "one update_many call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_claimed_again_while_its_bulk_write_waits_leaves_the_ticket_to_its_new_holder() {
    // 59/min clears no ticket within 1 s: the whole backlog is one round, one tag set (all gold),
    // so its update_many is the first call; the fake answers it 429 with Retry-After: 6, and the
    // round waits that long before trying again.
    let s = unstarted(Db::Sqlite, 59, Duration::from_secs(1), |fake| {
        fake.fail_next(1, 429, Some(6))
    })
    .await;
    s.enqueue([2, 4, 6]).await;
    s.start();
    let pool = s.worker.store.pool();
    wait_until(
        Duration::from_secs(20),
        "the round's update_many met 429",
        || async {
            s.fake
                .calls()
                .contains(&"PUT /api/v2/tickets/update_many.json 429".to_string())
        },
    )
    .await;
    // Meanwhile ticket 2's lease runs out (its heartbeat stalled, say) and the dispatcher claims
    // the job again (the same process: the same owner name).
    let lease_of = |ticket: &'static str| async move {
        sqlx::query_scalar::<_, Option<i64>>(
            "select lease_until from job where ticket_id = $1 and state = 'running'",
        )
        .bind(ticket)
        .fetch_optional(pool)
        .await
        .expect("lease")
        .flatten()
    };
    wait_until(Duration::from_secs(10), "ticket 2's job claimed again", || async {
        sqlx::query("update job set lease_until = 0 where ticket_id = '2' and state = 'running' and attempts = 1")
            .execute(pool)
            .await
            .expect("expire");
        let reclaimed: Option<String> =
            sqlx::query_scalar("select last_error from job where ticket_id = '2'")
                .fetch_one(pool)
                .await
                .expect("job");
        reclaimed.is_some_and(|e| e.contains("lease expired"))
    })
    .await;
    // The round's next heartbeat: it renews ticket 4's lease and finds ticket 2's gone.
    let before = lease_of("4").await;
    wait_until(
        Duration::from_secs(10),
        "the round's next heartbeat",
        || async { lease_of("4").await > before },
    )
    .await;
    let calls = s.fake.calls();
    assert!(
        !calls.contains(&"PUT /api/v2/tickets/update_many.json 200".to_string()),
        "premise: the round noticed before its next update_many try: {calls:?}"
    );

    wait_all_audited(&s, 3).await;
    for n in [2, 4, 6] {
        let rows = audit_of(&s, n).await;
        assert_eq!(rows.len(), 1, "ticket {n}: one audit row: {rows:?}");
        assert_eq!(rows[0].record.outcome, "tagged", "ticket {n}");
        assert_eq!(s.fake.tags(Vendor::Zendesk, &n.to_string()), ["vip-gold"]);
        assert_eq!(
            s.fake.tag_writes(Vendor::Zendesk, &n.to_string()),
            1,
            "ticket {n} written once: {:?}",
            s.fake.calls()
        );
    }
    // Ticket 2 by its new holder through its tags endpoint; 4 and 6 in the one bulk job.
    let routes = s.fake.routes();
    assert!(
        routes.contains(&"PUT /api/v2/tickets/2/tags".to_string()),
        "{routes:?}"
    );
    assert_eq!(s.fake.bulk_jobs(), 1, "{routes:?}");
    let jobs_done: i64 = sqlx::query_scalar("select count(*) from job where state = 'done'")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(jobs_done, 3, "no job lost");
    s.finish().await;
}
