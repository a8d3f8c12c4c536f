//! Scale-out: three `ltv-tagger serve` processes on one PostgreSQL state store share the work and
//! one helpdesk rate budget.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig, Helpdesk};
use ltv_tagger::clock::Millis;
use ltv_tagger::rate_budget::RateBudget;
use ltv_tagger::state::StateStore;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    binary, free_port, post_zendesk_to, shop_db, test_settings, trigger_body, write_test_config,
    Db, ServeProcess, TestDb,
};

const REPLICAS: usize = 3;
/// Distinct tickets, one webhook each.
const TICKETS: u64 = 2_100;
const FIRST_TICKET: u64 = 100_000;
/// Concurrent webhook senders, spread round-robin over the replicas.
const SENDERS: usize = 12;
/// The account's limit: `zendesk.requests_per_minute` of the service and the fake's enforced
/// limit. Its pace (28.5 calls/s after a burst of 90) is well below what three replicas manage
/// on two shared, busy cores (45–80 calls/s), so the budget sets the pace and replicas that did
/// not share it would go over; 700 writes take ≈ 25 s.
const LIMIT_PER_MINUTE: u32 = 1_800;

/// One kind of ticket: who asks, what the ticket already carries, what must happen.
struct Kind {
    /// As the helpdesk sends it.
    email: &'static str,
    /// The ticket's tags, in the webhook and at the helpdesk before the service acts.
    had: &'static [&'static str],
    decided: &'static [&'static str],
    outcome: &'static str,
}

impl Kind {
    /// What the service writes: the decided tags the ticket does not have yet.
    fn written(&self) -> Vec<String> {
        let new = self.decided.iter().filter(|t| !self.had.contains(t));
        new.map(|t| (*t).to_string()).collect()
    }

    /// The ticket's tags at the helpdesk afterwards.
    fn at_helpdesk(&self) -> Vec<String> {
        let mut all: Vec<String> = self.had.iter().map(|t| (*t).to_string()).collect();
        all.extend(self.written());
        all.sort();
        all
    }
}

/// Tickets cycle through these: four writes in twelve. Most events in a helpdesk concern
/// tickets that already carry their tags (Zendesk fires the webhook again on every update).
const KINDS: &[Kind] = &[
    Kind {
        email: "gold@shop.test",
        had: &[],
        decided: &["vip-gold"],
        outcome: "tagged",
    },
    Kind {
        email: "pending@shop.test",
        had: &["web_form"],
        decided: &["vip"],
        outcome: "tagged",
    },
    Kind {
        email: "disputer@shop.test",
        had: &[],
        decided: &["dispute"],
        outcome: "tagged",
    },
    Kind {
        email: "  MIXED.case@shop.TEST ",
        had: &[],
        decided: &["vip"],
        outcome: "tagged",
    },
    Kind {
        email: "small@shop.test",
        had: &[],
        decided: &[],
        outcome: "no_tags",
    },
    Kind {
        email: "nobody@shop.test",
        had: &[],
        decided: &[],
        outcome: "unknown_customer",
    },
    Kind {
        email: "gold@shop.test",
        had: &["vip-gold", "web_form"],
        decided: &["vip-gold"],
        outcome: "already_tagged",
    },
    Kind {
        email: "almost@shop.test",
        had: &["vip"],
        decided: &["vip"],
        outcome: "already_tagged",
    },
    Kind {
        email: "pending@shop.test",
        had: &["vip"],
        decided: &["vip"],
        outcome: "already_tagged",
    },
    Kind {
        email: "disputer@shop.test",
        had: &["dispute"],
        decided: &["dispute"],
        outcome: "already_tagged",
    },
    Kind {
        email: "Mixed.Case@Shop.Test",
        had: &["vip", "web_form"],
        decided: &["vip"],
        outcome: "already_tagged",
    },
    Kind {
        email: "almost@shop.test",
        had: &["web_form", "vip"],
        decided: &["vip"],
        outcome: "already_tagged",
    },
];

fn kind_of(ticket: u64) -> &'static Kind {
    &KINDS[((ticket - FIRST_TICKET) % KINDS.len() as u64) as usize]
}

/// The service's own budget for this limit (see `RateBudget::zendesk`): a burst of a twentieth of
/// the limit, then the rest of the limit spread over the minute.
fn service_burst() -> usize {
    (LIMIT_PER_MINUTE / 20) as usize
}

/// Spends the fake account's budget down to `leave` calls, as other API clients of the same
/// account would.
async fn spend_account_budget(fake: &FakeHelpdesk, cfg: &FakeHelpdeskConfig, leave: u64) {
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}/token:{}", cfg.zendesk_email, cfg.zendesk_token))
    );
    let url = format!("{}/api/v2/tickets/1/tags", fake.base_url());
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (auth, url, done) = (auth.clone(), url.clone(), done.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            while !done.load(Ordering::SeqCst) {
                assert!(
                    Instant::now() < deadline,
                    "could not spend the fake's budget"
                );
                let res = http
                    .get(&url)
                    .header("Authorization", &auth)
                    .send()
                    .await
                    .expect("fake helpdesk");
                assert_eq!(res.status().as_u16(), 200, "spending the budget");
                let left: u64 = res
                    .headers()
                    .get("x-rate-limit-remaining")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("X-Rate-Limit-Remaining");
                if left <= leave {
                    done.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("budget spender");
    }
}

/// The jobs each replica finished, from its JSON log ("job done" lines carry the job's span).
fn jobs_done_in(log: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(log).expect("log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "job done")
        .map(|v| {
            v["span"]["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("job done line without a job id: {v}"))
        })
        .collect()
}

fn count_in(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .expect("log")
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// The most calls in any window of `w` (times sorted).
fn max_in_window(times: &[Instant], w: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= w {
            lo += 1;
        }
        best = best.max(hi + 1 - lo);
    }
    best
}

/// The most calls any window held beyond what a steady `pace` (calls per second) allows in it:
/// max over windows of `calls − pace × length` (times sorted). A token bucket shared by every
/// replica keeps this at most its burst.
fn excess_over_pace(times: &[Instant], pace: f64) -> f64 {
    let Some(&t0) = times.first() else { return 0.0 };
    let mut best_start = f64::MIN;
    let mut worst = 0.0_f64;
    for (j, t) in times.iter().enumerate() {
        let at = t.duration_since(t0).as_secs_f64();
        // A window starting at call j: pace × start − calls before it.
        best_start = best_start.max(pace * at - j as f64);
        worst = worst.max((j + 1) as f64 - pace * at + best_start);
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgres_share_the_work_and_the_rate_limit() {
    let cfg = FakeHelpdeskConfig {
        zendesk_limit_per_minute: Some(LIMIT_PER_MINUTE),
        ..FakeHelpdeskConfig::default()
    };
    let fake = FakeHelpdesk::start(cfg.clone()).await.expect("fake");
    for ticket in FIRST_TICKET..FIRST_TICKET + TICKETS {
        let had = kind_of(ticket).had;
        if !had.is_empty() {
            fake.set_ticket_tags(Helpdesk::Zendesk, &ticket.to_string(), had);
        }
    }
    let state = TestDb::create(Db::Postgres, "ltv_scale").await;
    let shop = shop_db(Db::Sqlite).await;
    let mut raw = test_settings(&state.url, &shop.url, &fake, &cfg, true, false);
    raw.zendesk.requests_per_minute = LIMIT_PER_MINUTE;
    // The single-write path shared by replicas is what this test is about: a backlog of 2,100
    // would otherwise go through update_many (more than 10 s of the budget), which
    // `bulk_writes.rs` tests.
    raw.zendesk.bulk_after = Duration::from_secs(3600);
    // Production values, not the test harness's fast ones: a 3 s lease could expire on these
    // shared, busy cores and let another replica take a job over, which is at-least-once by
    // design but not what this test is about.
    raw.worker.lease = Duration::from_secs(30);
    raw.orders.cache_ttl = Duration::from_secs(300);
    raw.server.shutdown_grace = Duration::from_secs(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &raw, &cfg);

    // As in Kubernetes: one `migrate`, then every replica starts with migrate_on_start off.
    let out = tokio::process::Command::new(binary())
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("run migrate");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut replicas = Vec::new();
    let mut logs: Vec<PathBuf> = Vec::new();
    for i in 0..REPLICAS {
        let log = dir.path().join(format!("replica-{i}.log"));
        let p = ServeProcess::start(
            &config,
            free_port(),
            &log,
            &[
                ("LTV_TAGGER__STATE__MIGRATE_ON_START", "false"),
                ("HOSTNAME", &format!("replica-{i}")),
            ],
        )
        .await;
        replicas.push(p);
        logs.push(log);
    }
    let settings = raw.validate().expect("valid");
    let store = StateStore::connect_lazy(&settings.state).expect("store");

    // The tickets arrive while the account is paused, as after a 429 whose Retry-After has not run
    // out yet (the service's own `pause_budget`, extended until every webhook is in): when the
    // pause ends, three replicas with a full queue compete for one budget, the case a shared
    // limit must survive. Without it the limit would only bind if ingest outpaced the budget.
    let account = format!(
        "zendesk:{}",
        settings.zendesk.as_ref().expect("zendesk on").base_url
    );
    let zendesk = settings.zendesk.as_ref().expect("zendesk on");
    let budget = RateBudget::zendesk(store.clone(), account, zendesk.requests_per_minute);
    budget.ensure(Millis::now()).await.expect("budget row");
    let paused = CancellationToken::new();
    let pauser = {
        let (budget, paused) = (budget.clone(), paused.clone());
        tokio::spawn(async move {
            while !paused.is_cancelled() {
                let now = Millis::now();
                budget
                    .pause_until(now + Duration::from_secs(2), now)
                    .await
                    .expect("pause");
                tokio::select! {
                    _ = paused.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };

    // Send every webhook, round-robin over the replicas, from several concurrent clients.
    let bases: Arc<Vec<String>> = Arc::new(replicas.iter().map(ServeProcess::base).collect());
    let next = Arc::new(AtomicU64::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let accepted_by: Arc<Vec<AtomicUsize>> =
        Arc::new((0..REPLICAS).map(|_| AtomicUsize::new(0)).collect());
    let t0 = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (bases, next, resent, accepted_by) = (
            bases.clone(),
            next.clone(),
            resent.clone(),
            accepted_by.clone(),
        );
        senders.spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("client");
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= TICKETS {
                    return;
                }
                let ticket = FIRST_TICKET + n;
                let replica = (n % REPLICAS as u64) as usize;
                let kind = kind_of(ticket);
                let body = trigger_body(ticket, kind.email, &kind.had.join(" "));
                let invocation = format!("scale-{ticket}");
                // Like Zendesk: a 503 or a broken connection is delivered again (same invocation
                // id, so a delivery that was in fact committed is not queued twice).
                let mut tries = 0;
                loop {
                    tries += 1;
                    match post_zendesk_to(&http, &bases[replica], &body, Some(&invocation)).await {
                        Ok(r) if r.status().as_u16() == 202 => break,
                        Ok(r) if r.status().as_u16() == 503 && tries < 10 => {}
                        Err(_) if tries < 10 => {}
                        Ok(r) => panic!("ticket {ticket}: HTTP {}", r.status()),
                        Err(e) => panic!("ticket {ticket}: {e}"),
                    }
                    resent.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                accepted_by[replica].fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r.expect("sender");
    }
    let ingest = t0.elapsed();
    // The pause is a setup step, not a property of the service: a stall of these busy cores
    // longer than its 2 s could let a few calls through early (they are counted below all the
    // same, just with the full budget the fake still had then).
    let before_release = fake.requests().len();
    // Other clients of the account used all but the service's burst and one second of budget, so
    // the fake refuses (429) as soon as the replicas together go over the shared budget. (A fresh
    // fake holds a full minute of calls: nothing this run does could be refused.)
    let leave = (service_burst() + LIMIT_PER_MINUTE as usize / 60) as u64;
    spend_account_budget(&fake, &cfg, leave).await;
    let released = Instant::now();
    paused.cancel();
    pauser.await.expect("pauser");

    // Wait for every decision to be recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: i64 = sqlx::query_scalar("select count(*) from audit")
            .fetch_one(store.pool())
            .await
            .expect("count audit");
        if n >= TICKETS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {TICKETS} tickets decided after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = released.elapsed();
    let depth = store.queue_depth().await.expect("depth");
    assert_eq!(
        (depth.queued, depth.running, depth.dead),
        (0, 0, 0),
        "jobs left over"
    );

    for p in &replicas {
        p.signal("TERM");
    }
    for p in &mut replicas {
        assert!(
            p.wait_exit(Duration::from_secs(30)).await.success(),
            "a replica did not stop cleanly"
        );
    }

    // Every call but the budget spender's reads of ticket 1.
    let spender = "/api/v2/tickets/1/tags";
    let calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path != spender)
        .collect();

    // 1. The account's limit was never exceeded: the fake, left with only the service's burst
    //    plus one second of budget, refused nothing; no minute held more than the limit; and no
    //    stretch of the run held more calls than one shared budget grants (burst + pace × length,
    //    with 2 s of pace for the time between a grant and the call's arrival on busy cores).
    assert_eq!(fake.rate_limited(), 0, "the fake answered 429");
    assert_eq!(fake.count_status(429), 0);
    let mut times: Vec<Instant> = calls.iter().map(|r| r.at).collect();
    times.sort();
    let per_min = max_in_window(&times, Duration::from_secs(60));
    assert!(per_min <= LIMIT_PER_MINUTE as usize);
    let pace = f64::from(LIMIT_PER_MINUTE - LIMIT_PER_MINUTE / 20) / 60.0;
    let excess = excess_over_pace(&times, pace);
    assert!(
        excess <= service_burst() as f64 + 2.0 * pace,
        "the replicas together went {excess:.0} calls over the pace of one shared budget ({pace:.1}/s; burst {})",
        service_burst()
    );

    // 2. Every ticket decided once, as the policy says, and its tags at the helpdesk.
    let audit = store.audit(None, 100_000).await.expect("audit");
    assert_eq!(audit.len(), TICKETS as usize, "one audit row per ticket");
    let mut seen_tickets = HashSet::new();
    let mut seen_jobs = HashSet::new();
    for a in &audit {
        let ticket: u64 = a.ticket_id.get();
        assert!(seen_tickets.insert(ticket), "ticket {ticket} decided twice");
        assert!(
            seen_jobs.insert(a.job_id),
            "job {} recorded twice",
            a.job_id
        );
        let kind = kind_of(ticket);
        assert_eq!(
            a.record.outcome, kind.outcome,
            "ticket {ticket} ({})",
            kind.email
        );
        assert_eq!(
            a.record.tags_decided,
            kind.decided.to_vec(),
            "ticket {ticket}"
        );
        assert_eq!(a.record.tags_written, kind.written(), "ticket {ticket}");
        assert_eq!(a.attempts, 1, "ticket {ticket}: job claimed more than once");
        assert_eq!(a.event_count, 1, "ticket {ticket}");
    }
    let mut expected_writes = 0;
    for ticket in FIRST_TICKET..FIRST_TICKET + TICKETS {
        let kind = kind_of(ticket);
        assert_eq!(
            fake.tags(Helpdesk::Zendesk, &ticket.to_string()),
            kind.at_helpdesk(),
            "ticket {ticket}: tags at Zendesk"
        );
        let want = usize::from(!kind.written().is_empty());
        assert_eq!(
            fake.tag_writes(Helpdesk::Zendesk, &ticket.to_string()),
            want,
            "ticket {ticket}: tag writes"
        );
        expected_writes += want;
    }
    assert!(
        fake.violations().is_empty(),
        "contract breaches: {:?}",
        fake.violations()
    );

    // 3. No job ran twice, concurrently or not: every job was claimed exactly once (a claim counts
    //    an attempt), finished once, and its ticket saw exactly one write request.
    let jobs = sqlx::query("select id, state, attempts from job")
        .fetch_all(store.pool())
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), TICKETS as usize, "one job per ticket");
    for j in &jobs {
        let (id, st, attempts): (i64, String, i64) = (
            j.try_get("id").expect("id"),
            j.try_get("state").expect("state"),
            j.try_get("attempts").expect("attempts"),
        );
        assert_eq!((st.as_str(), attempts), ("done", 1), "job {id}");
    }
    let mut puts_per_ticket: HashMap<String, usize> = HashMap::new();
    for r in &calls {
        assert_eq!(
            (r.method.as_str(), r.status),
            ("PUT", 200),
            "unexpected call {} {}",
            r.method,
            r.path
        );
        *puts_per_ticket.entry(r.path.clone()).or_default() += 1;
    }
    assert_eq!(
        calls.len(),
        expected_writes,
        "one write request per tagged ticket"
    );
    assert!(puts_per_ticket.values().all(|&n| n == 1));

    // 4. All three replicas did work, and no job was finished by two of them.
    let done_by: Vec<Vec<i64>> = logs.iter().map(|l| jobs_done_in(l)).collect();
    let mut all: Vec<i64> = done_by.iter().flatten().copied().collect();
    all.sort_unstable();
    let distinct = all.len();
    all.dedup();
    assert_eq!(distinct, all.len(), "a job finished by two replicas");
    assert_eq!(all.len(), TICKETS as usize, "every job's 'job done' line");
    for (i, (jobs, log)) in done_by.iter().zip(&logs).enumerate() {
        assert!(!jobs.is_empty(), "replica {i} did no work");
        assert_eq!(count_in(log, "lease lost"), 0, "replica {i} lost a lease");
    }

    // Figures.
    let span = times
        .last()
        .zip(times.first())
        .map(|(l, f)| l.duration_since(*f))
        .unwrap_or_default();
    let per_minute = |calls: usize, d: Duration| calls as f64 / d.as_secs_f64().max(0.001) * 60.0;
    // Every take_token is one UPDATE of the account's row (the test's own pauses aside).
    let budget_updates: i64 = sqlx::query_scalar(
        "select cast(n_tup_upd as bigint) from pg_stat_user_tables where relname = 'rate_budget'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap_or(-1);
    let busiest_10s = max_in_window(&times, Duration::from_secs(10));
    println!(
        "scale-out: {REPLICAS} replicas on one PostgreSQL, {TICKETS} webhooks from {SENDERS} clients, {expected_writes} tag writes"
    );
    println!(
        "  ingest {:.1} s ({:.0} webhooks/s, {} re-sent after 503/error); all decided {:.1} s after release",
        ingest.as_secs_f64(),
        TICKETS as f64 / ingest.as_secs_f64(),
        resent.load(Ordering::SeqCst),
        total.as_secs_f64()
    );
    println!(
        "  helpdesk calls: {} in {:.1} s = {:.0}/min (one shared budget allows {:.0} in that span: burst {} + {:.0}/min); most beyond the pace in any window: {excess:.0} calls; busiest 10 s: {busiest_10s} = {:.0}/min; busiest 1 s: {}; busiest 60 s: {per_min} <= {LIMIT_PER_MINUTE}",
        calls.len(),
        span.as_secs_f64(),
        per_minute(calls.len(), span),
        service_burst() as f64 + pace * span.as_secs_f64(),
        service_burst(),
        pace * 60.0,
        per_minute(busiest_10s, Duration::from_secs(10)),
        max_in_window(&times, Duration::from_secs(1)),
    );
    println!(
        "  fake's enforced limit {LIMIT_PER_MINUTE}/min with {leave} calls left at release: 429s {}; calls before release {before_release}; max in flight at the fake {}; rate_budget row updates {budget_updates} (one per take_token, plus the test's pauses)",
        fake.rate_limited(),
        fake.max_in_flight()
    );
    let written: HashSet<i64> = audit
        .iter()
        .filter(|a| !a.record.tags_written.is_empty())
        .map(|a| a.job_id.get())
        .collect();
    for (i, jobs) in done_by.iter().enumerate() {
        let writes = jobs.iter().filter(|j| written.contains(j)).count();
        println!(
            "  replica {i}: accepted {} webhooks, finished {} jobs ({:.1} %), {writes} tag writes ({:.1} %)",
            accepted_by[i].load(Ordering::SeqCst),
            jobs.len(),
            jobs.len() as f64 * 100.0 / TICKETS as f64,
            writes as f64 * 100.0 / expected_writes.max(1) as f64
        );
    }

    store.pool().close().await;
    state.drop_db().await;
    shop.drop_db().await;
}
