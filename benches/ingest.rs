//! Ingest and processing benchmarks (`cargo bench --bench ingest`; method and results in
//! BENCHMARKS.md).
//!
//! A custom harness (`harness = false`) so that every comparison is measured side by side in one
//! run: the micro cases are sampled round-robin, the end-to-end configurations alternate round by
//! round, and one compact table of medians and ratios is printed at the end.
//!
//! 1. micro: Zendesk signature check (fixture body, 200 KB body), webhook parsing;
//! 2. policy: `Policy::decide`;
//! 3. ingest: signed Zendesk webhooks over loopback HTTP to the real application, workers kept
//!    idle, state store on a SQLite file vs on the local PostgreSQL; plus `StateStore::enqueue`
//!    alone;
//! 4. process: a burst of queued jobs to the last audit row, worker.concurrency 1 vs 8 on SQLite,
//!    and 8 on PostgreSQL; claim: `StateStore::claim` against the size of the backlog;
//! 5. memory: RSS of the real `ltv-tagger serve` binary idle vs with a backlog of queued webhooks
//!    while the helpdesk answers 503 (SQLite, PostgreSQL).
//!
//! The SQLite state store always uses one connection (`state.max_connections` applies to
//! PostgreSQL only), so there is one SQLite configuration per section.
//!
//! Pass words after `--` to run only the sections whose names contain one of them:
//! `cargo bench --bench ingest -- micro policy`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use secrecy::SecretString;

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig};
use ltv_tagger::app::Application;
use ltv_tagger::clock::Millis;
use ltv_tagger::config::{RawSettings, Settings};
use ltv_tagger::demo::create_sample_shop;
use ltv_tagger::domain::CustomerStats;
use ltv_tagger::domain::Tag;
use ltv_tagger::http::webhooks::{self, gorgias, zendesk};
use ltv_tagger::policy::{Policy, VipTier};
use ltv_tagger::state::{NewEvent, StateStore};

#[path = "support/state_db.rs"]
mod state_db;
use state_db::StateDb;

// ---- sizes (the whole run stays under ~3 minutes on 2 shared cores) ---------------------------

/// Round-robin samples per micro case, and the time one sample aims at.
const MICRO_SAMPLES: usize = 101;
const MICRO_SAMPLE_TIME: Duration = Duration::from_millis(4);
/// Ingest: webhooks per round, rounds per backend (alternating), concurrent clients, warm-up.
const INGEST_N: usize = 1000;
const INGEST_ROUNDS: usize = 5;
const INGEST_CLIENTS: usize = 16;
const INGEST_WARMUP: usize = 200;
/// `StateStore::enqueue` alone, one caller: commits per round.
const ENQUEUE_N: usize = 300;
/// Processing: queued jobs per round, rounds per configuration (alternating).
const PROCESS_N: usize = 600;
const PROCESS_ROUNDS: usize = 3;
/// Memory: webhooks per burst, bursts.
const BACKLOG_N: usize = 2000;
const BACKLOG_BURSTS: usize = 3;

const SECRET: &str = "bench-zendesk-signing-secret";
/// Customers of `create_sample_shop`, and one it does not know.
const CUSTOMERS: [&str; 5] = [
    "big.spender@example.com", // vip-gold → tag write
    "regular@example.com",     // vip → tag write
    "disputer@example.com",    // dispute → tag write
    "newcomer@example.com",    // below every tier → no write
    "stranger@example.com",    // not in the shop (the default query still answers LTV 0) → no write
];

static NEXT_TICKET: AtomicU64 = AtomicU64::new(100_000);

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---- statistics and the result table ----------------------------------------------------------

/// Nearest-rank percentile of sorted values (`p` in 0..=1).
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let s = sorted(v.to_vec());
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn fmt_dur(d: Duration) -> String {
    fmt_ns(d.as_nanos() as f64)
}

fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

struct Row {
    section: &'static str,
    case: String,
    median: String,
    spread: String,
    note: String,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        section: &'static str,
        case: impl Into<String>,
        median: impl Into<String>,
        spread: impl Into<String>,
        note: impl Into<String>,
    ) {
        let row = Row {
            section,
            case: case.into(),
            median: median.into(),
            spread: spread.into(),
            note: note.into(),
        };
        println!(
            "  {:<11} {:<44} {:>14}  {:<26} {}",
            row.section, row.case, row.median, row.spread, row.note
        );
        self.0.push(row);
    }

    fn print(&self) {
        let head = ["section", "case", "median", "spread", "note"];
        let mut w = head.map(|h| h.chars().count());
        for r in &self.0 {
            for (i, s) in [
                &r.section.to_string(),
                &r.case,
                &r.median,
                &r.spread,
                &r.note,
            ]
            .iter()
            .enumerate()
            {
                w[i] = w[i].max(s.chars().count());
            }
        }
        let line = |c: [&str; 5]| {
            format!(
                "| {:<w0$} | {:<w1$} | {:>w2$} | {:<w3$} | {:<w4$} |",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
        };
        println!("\n{}", line(head));
        let dashes = w.map(|n| "-".repeat(n));
        println!(
            "|-{}-|-{}-|-{}:|-{}-|-{}-|",
            dashes[0], dashes[1], dashes[2], dashes[3], dashes[4]
        );
        for r in &self.0 {
            println!(
                "{}",
                line([r.section, &r.case, &r.median, &r.spread, &r.note])
            );
        }
    }
}

// ---- 1 & 2: micro benchmarks -----------------------------------------------------------------

struct MicroCase<'a> {
    name: &'static str,
    f: Box<dyn FnMut() + 'a>,
    iters: u64,
    per_call_ns: Vec<f64>,
}

impl<'a> MicroCase<'a> {
    fn new(name: &'static str, f: impl FnMut() + 'a) -> Self {
        MicroCase {
            name,
            f: Box::new(f),
            iters: 1,
            per_call_ns: Vec::new(),
        }
    }

    fn time(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            (self.f)();
        }
        start.elapsed()
    }
}

/// Calibrates each case to ~`MICRO_SAMPLE_TIME` per sample, then takes the samples round-robin
/// (the starting case rotates), so drift on the shared machine hits every case alike.
fn run_micro(cases: &mut [MicroCase<'_>]) {
    for c in cases.iter_mut() {
        let mut n = 1u64;
        loop {
            let t = c.time(n);
            if t >= MICRO_SAMPLE_TIME / 4 || n >= 1 << 30 {
                let per = t.as_nanos().max(1) as f64 / n as f64;
                c.iters = ((MICRO_SAMPLE_TIME.as_nanos() as f64 / per).ceil() as u64).max(1);
                break;
            }
            n *= 2;
        }
    }
    let k = cases.len();
    for s in 0..MICRO_SAMPLES {
        for j in 0..k {
            let c = &mut cases[(s + j) % k];
            let iters = c.iters;
            let t = c.time(iters);
            c.per_call_ns.push(t.as_nanos() as f64 / iters as f64);
        }
    }
}

fn micro_spread(samples: &[f64]) -> String {
    let s = sorted(samples.to_vec());
    format!(
        "p25–p75 {}–{}",
        fmt_ns(pct(&s, 0.25)),
        fmt_ns(pct(&s, 0.75))
    )
}

fn trigger_body(ticket: u64, email: &str) -> String {
    serde_json::json!({
        "ticket_id": ticket.to_string(),
        "requester_email": email,
        "requester_id": "",
        "tags": "web",
    })
    .to_string()
}

/// A 200 KB trigger body: the admin added the ticket's description to the JSON.
fn big_body() -> Vec<u8> {
    let text = "Where is my order? It says delivered but nothing arrived. ".repeat(4_000);
    let body = serde_json::json!({
        "ticket_id": "35436",
        "requester_email": "jane.doe@example.com",
        "requester_id": "8447388090494",
        "tags": "delivery_issue web",
        "description": &text[..200 * 1024 - 150],
    })
    .to_string();
    body.into_bytes()
}

fn micro_section(table: &mut Table, sections: &Sections) {
    let keys = zendesk::SignatureKeys {
        secret: SecretString::from(SECRET.to_string()),
        test_secret: None,
        tolerance: Duration::from_secs(300),
    };
    let ts = "2024-05-08T13:09:42Z";
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(ts)
        .expect("timestamp")
        .with_timezone(&Utc);
    let small = fixture("zendesk-trigger-body.json");
    let big = big_body();
    let event = fixture("zendesk-event-ticket-created.json");
    let gorgias_body = fixture("gorgias-http-integration-body.json");
    let sig_small = zendesk::sign(SECRET, ts, &small);
    let sig_big = zendesk::sign(SECRET, ts, &big);
    assert!(zendesk::verify(
        &keys,
        Some(sig_small.as_bytes()),
        Some(ts.as_bytes()),
        &small,
        now
    )
    .is_ok());
    assert!(zendesk::verify(
        &keys,
        Some(sig_big.as_bytes()),
        Some(ts.as_bytes()),
        &big,
        now
    )
    .is_ok());
    assert!(zendesk::parse(&big).is_ok() && gorgias::parse(&gorgias_body).is_ok());

    let tag = |s: &str| Tag::parse(s).expect("tag");
    let policy = Policy::new(
        vec![
            VipTier {
                tag: tag("vip"),
                min_ltv: Decimal::from(500),
            },
            VipTier {
                tag: tag("vip-gold"),
                min_ltv: Decimal::from(2500),
            },
        ],
        Some(tag("dispute")),
        true,
    );
    let gold = CustomerStats {
        orders: 3,
        ltv: "3000.00".parse().expect("decimal"),
        disputes: 0,
        extra: Default::default(),
    };
    let disputer = CustomerStats {
        orders: 1,
        ltv: "9000.00".parse().expect("decimal"),
        disputes: 1,
        extra: Default::default(),
    };
    let nobody = CustomerStats {
        orders: 1,
        ltv: "35.90".parse().expect("decimal"),
        disputes: 0,
        extra: Default::default(),
    };

    let mut cases: Vec<MicroCase<'_>> = Vec::new();
    if sections.on("micro") {
        cases.push(MicroCase::new("zendesk::verify, fixture body", || {
            black_box(zendesk::verify(
                &keys,
                Some(black_box(sig_small.as_bytes())),
                Some(black_box(ts.as_bytes())),
                black_box(&small),
                now,
            ))
            .ok();
        }));
        cases.push(MicroCase::new("zendesk::verify, 200 KB body", || {
            black_box(zendesk::verify(
                &keys,
                Some(black_box(sig_big.as_bytes())),
                Some(black_box(ts.as_bytes())),
                black_box(&big),
                now,
            ))
            .ok();
        }));
        cases.push(MicroCase::new("zendesk::parse, trigger fixture", || {
            black_box(zendesk::parse(black_box(&small))).ok();
        }));
        cases.push(MicroCase::new("zendesk::parse, event fixture", || {
            black_box(zendesk::parse(black_box(&event))).ok();
        }));
        cases.push(MicroCase::new("zendesk::parse, 200 KB body", || {
            black_box(zendesk::parse(black_box(&big))).ok();
        }));
        cases.push(MicroCase::new("gorgias::parse, fixture", || {
            black_box(gorgias::parse(black_box(&gorgias_body))).ok();
        }));
    }
    if sections.on("policy") {
        cases.push(MicroCase::new("Policy::decide, vip-gold", || {
            black_box(policy.decide(black_box(&gold)));
        }));
        cases.push(MicroCase::new("Policy::decide, disputer", || {
            black_box(policy.decide(black_box(&disputer)));
        }));
        cases.push(MicroCase::new("Policy::decide, below tiers", || {
            black_box(policy.decide(black_box(&nobody)));
        }));
    }
    if cases.is_empty() {
        return;
    }
    println!(
        "\n[micro/policy] {} cases × {MICRO_SAMPLES} round-robin samples of ~{}",
        cases.len(),
        fmt_dur(MICRO_SAMPLE_TIME)
    );
    run_micro(&mut cases);
    for c in &cases {
        let section = if c.name.starts_with("Policy") {
            "policy"
        } else {
            "micro"
        };
        let m = median(&c.per_call_ns);
        let note = if c.name.contains("200 KB") {
            format!("{:.0} MB/s", big.len() as f64 / m * 1e3)
        } else {
            String::new()
        };
        table.add(
            section,
            c.name,
            fmt_ns(m),
            micro_spread(&c.per_call_ns),
            note,
        );
    }
}

// ---- shared plumbing for the end-to-end sections -----------------------------------------------

fn settings(
    state_url: &str,
    shop_url: &str,
    fake: &FakeHelpdesk,
    cfg: &FakeHelpdeskConfig,
) -> RawSettings {
    let mut raw = RawSettings::load(None, "LTV_TAGGER_BENCH_UNSET").expect("defaults load");
    raw.server.bind = "127.0.0.1:0".into();
    raw.server.shutdown_grace = Duration::from_secs(1);
    raw.state.url = state_url.into();
    raw.orders.url = shop_url.into();
    // Every job queries the order DB (a real shop has many distinct customers).
    raw.orders.cache_ttl = Duration::ZERO;
    raw.worker.poll_interval = Duration::from_millis(50);
    raw.worker.retry_base = Duration::from_millis(100);
    raw.worker.retry_max = Duration::from_secs(2);
    fake.serve_zendesk_for(&mut raw, cfg, SECRET);
    // The service's own pacing out of the way: we measure what the machine can do.
    raw.zendesk.requests_per_minute = 1_000_000;
    raw
}

struct RunningApp {
    base: String,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    async fn start(settings: Settings) -> anyhow::Result<RunningApp> {
        let app = Application::build(settings).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let stop = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(RunningApp { base, stop, task })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// One signed delivery, prepared before the clock starts.
struct Prepared {
    body: Bytes,
    signature: String,
    timestamp: String,
    invocation: String,
}

fn prepare(n: usize, email: &str) -> Arc<Vec<Prepared>> {
    let timestamp = zendesk::timestamp(Utc::now());
    Arc::new(
        (0..n)
            .map(|_| {
                let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
                let body = trigger_body(ticket, email);
                Prepared {
                    signature: zendesk::sign(SECRET, &timestamp, body.as_bytes()),
                    timestamp: timestamp.clone(),
                    invocation: uuid::Uuid::new_v4().to_string(),
                    body: Bytes::from(body),
                }
            })
            .collect(),
    )
}

struct Load {
    elapsed: Duration,
    /// Latency of each 202, in nanoseconds.
    latencies: Vec<f64>,
    failures: usize,
    first_failure: Option<String>,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends every prepared delivery to `base` from `clients` concurrent clients.
async fn fire(
    http: &reqwest::Client,
    base: &str,
    reqs: Arc<Vec<Prepared>>,
    clients: usize,
) -> Load {
    let url = format!("{base}/webhooks/zendesk");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url, reqs, next) = (http.clone(), url.clone(), reqs.clone(), next.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(reqs.len() / clients + 1);
            let mut failures = 0;
            let mut first_failure = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = reqs.get(i) else { break };
                let t = Instant::now();
                let res = http
                    .post(&url)
                    .header(zendesk::SIGNATURE_HEADER, &p.signature)
                    .header(zendesk::TIMESTAMP_HEADER, &p.timestamp)
                    .header(zendesk::INVOCATION_HEADER, &p.invocation)
                    .header("content-type", "application/json")
                    .body(p.body.clone())
                    .send()
                    .await;
                let outcome = match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.bytes().await.unwrap_or_default();
                        if status == 202 {
                            Ok(())
                        } else {
                            Err(format!("{status} {}", String::from_utf8_lossy(&text)))
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => lat.push(t.elapsed().as_nanos() as f64),
                    Err(e) => {
                        failures += 1;
                        first_failure.get_or_insert(e);
                    }
                }
            }
            (lat, failures, first_failure)
        });
    }
    let mut load = Load {
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(reqs.len()),
        failures: 0,
        first_failure: None,
    };
    while let Some(r) = set.join_next().await {
        let (lat, failures, first) = r.expect("client task");
        load.latencies.extend(lat);
        load.failures += failures;
        if load.first_failure.is_none() {
            load.first_failure = first;
        }
    }
    load.elapsed = start.elapsed();
    load
}

fn check(load: &Load, what: &str) {
    if load.failures > 0 {
        eprintln!(
            "warning: {what}: {} requests did not get a 202 (first: {})",
            load.failures,
            load.first_failure.as_deref().unwrap_or("?")
        );
    }
}

// ---- 3: ingest over HTTP, SQLite vs PostgreSQL -------------------------------------------------

struct Backend {
    name: &'static str,
    db: StateDb,
    app: Option<RunningApp>,
    store: StateStore,
    per_sec: Vec<f64>,
    latencies: Vec<f64>,
    enqueue_ns: Vec<f64>,
}

async fn ingest_section(
    table: &mut Table,
    shop_url: &str,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    // The helpdesk answers after an hour: the single worker takes the first job and waits on
    // it, so it claims nothing else and the measurement sees the ingest path alone.
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await?;
    fake.set_latency(Duration::from_secs(3600));
    let mut backends = Vec::new();
    for (name, db) in [
        ("SQLite file", StateDb::sqlite().await?),
        ("PostgreSQL", StateDb::postgres().await?),
    ] {
        let mut raw = settings(&db.url, shop_url, &fake, &cfg);
        raw.worker.concurrency = 1;
        raw.worker.poll_interval = Duration::from_secs(3600);
        raw.zendesk.request_timeout = Duration::from_secs(3600);
        let s = raw.validate()?;
        let store = StateStore::connect_lazy(&s.state)?;
        let app = RunningApp::start(s).await?;
        backends.push(Backend {
            name,
            db,
            app: Some(app),
            store,
            per_sec: vec![],
            latencies: vec![],
            enqueue_ns: vec![],
        });
    }
    let result = async {
        println!(
            "\n[ingest] {INGEST_ROUNDS} rounds × {INGEST_N} signed Zendesk webhooks, \
             {INGEST_CLIENTS} clients, backends alternating"
        );
        for b in &backends {
            let base = &b.app.as_ref().expect("app").base;
            check(
                &fire(
                    http,
                    base,
                    prepare(INGEST_WARMUP, CUSTOMERS[0]),
                    INGEST_CLIENTS,
                )
                .await,
                "warm-up",
            );
        }
        for round in 0..INGEST_ROUNDS {
            for k in 0..backends.len() {
                let n = backends.len();
                let b = &mut backends[(round + k) % n];
                let base = &b.app.as_ref().expect("app").base;
                let load = fire(http, base, prepare(INGEST_N, CUSTOMERS[0]), INGEST_CLIENTS).await;
                check(&load, b.name);
                println!(
                    "  round {round} {:<24} {:>7.0} webhooks/s",
                    b.name,
                    load.per_sec()
                );
                b.per_sec.push(load.per_sec());
                b.latencies.extend(load.latencies);
            }
        }
        // The commit alone (no HTTP, no signature, no parsing), one caller, alternating.
        for round in 0..INGEST_ROUNDS {
            for k in 0..backends.len() {
                let n = backends.len();
                let b = &mut backends[(round + k) % n];
                for _ in 0..ENQUEUE_N {
                    let ev = queued_event(CUSTOMERS[0]);
                    let t = Instant::now();
                    b.store.enqueue(&ev, Millis::now()).await?;
                    b.enqueue_ns.push(t.elapsed().as_nanos() as f64);
                }
            }
        }
        // The worker really stayed out of the way: at most the one job it holds left the queue.
        for b in &backends {
            let d = b.store.queue_depth().await?;
            let expected = (INGEST_WARMUP + INGEST_ROUNDS * (INGEST_N + ENQUEUE_N)) as i64;
            anyhow::ensure!(
                d.queued + d.running == expected && d.running <= 1,
                "{}: unexpected queue {d:?}, wanted {expected} jobs",
                b.name
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for b in &mut backends {
        if let Some(app) = b.app.take() {
            app.stop().await;
        }
        b.store.pool().close().await;
        b.db.drop_db().await;
    }
    result?;

    let mut rates = Vec::new();
    let mut p50s = Vec::new();
    let mut commits = Vec::new();
    for b in &backends {
        let lat = sorted(b.latencies.clone());
        let rate = median(&b.per_sec);
        let lo = b.per_sec.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = b.per_sec.iter().copied().fold(0.0, f64::max);
        table.add(
            "ingest",
            format!("HTTP 202 throughput, state on {}", b.name),
            format!("{rate:.0}/s"),
            format!("rounds {lo:.0}–{hi:.0}/s"),
            format!("{INGEST_CLIENTS} clients, {INGEST_ROUNDS}×{INGEST_N}"),
        );
        table.add(
            "ingest",
            format!("HTTP 202 latency, state on {}", b.name),
            fmt_ns(pct(&lat, 0.5)),
            format!("p99 {}", fmt_ns(pct(&lat, 0.99))),
            format!("n={}", lat.len()),
        );
        let enq = sorted(b.enqueue_ns.clone());
        table.add(
            "ingest",
            format!("StateStore::enqueue alone, {}", b.name),
            fmt_ns(pct(&enq, 0.5)),
            format!("p99 {}", fmt_ns(pct(&enq, 0.99))),
            format!("1 caller, n={}", enq.len()),
        );
        rates.push(rate);
        p50s.push(pct(&lat, 0.5));
        commits.push(pct(&enq, 0.5));
    }
    table.add(
        "ingest",
        "ratio SQLite / PostgreSQL",
        format!("{:.2}×", rates[0] / rates[1]),
        format!("p50 latency {:.2}×", p50s[0] / p50s[1]),
        format!("enqueue p50 {:.2}×", commits[0] / commits[1]),
    );
    Ok(())
}

/// What the Zendesk handler would commit for a fresh delivery.
fn queued_event(email: &str) -> NewEvent {
    let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
    let body = trigger_body(ticket, email);
    let ev = zendesk::parse(body.as_bytes()).expect("trigger body parses");
    let invocation = uuid::Uuid::new_v4().to_string();
    let key = webhooks::dedupe_key(
        Some(&invocation),
        &ev,
        body.as_bytes(),
        Millis::now(),
        Duration::from_secs(600),
    );
    NewEvent {
        source: ev.source,
        ticket_id: ev.ticket_id,
        event_type: ev.event_type,
        requester: Some(ev.requester),
        ticket_tags: ev.ticket_tags,
        ticket_updated_at: ev.ticket_updated_at,
        dedupe_key: key,
        body,
    }
}

// ---- 4: processing throughput, concurrency 1 vs 8 ---------------------------------------------

/// One processing configuration.
struct ProcessConfig {
    name: &'static str,
    concurrency: usize,
    postgres: bool,
}

/// How one processing round went.
struct ProcessRound {
    elapsed: Duration,
    tag_writes: usize,
    outcomes: String,
    /// Mean order-DB query time, from the service's own histogram.
    lookup_mean: Duration,
}

/// A value of the service's Prometheus text output.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Queues `PROCESS_N` jobs in a fresh state DB, starts the application, and times until the
/// last audit row is written.
async fn process_round(
    shop_url: &str,
    config: &ProcessConfig,
    http: &reqwest::Client,
) -> anyhow::Result<ProcessRound> {
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await?;
    let db = if config.postgres {
        StateDb::postgres().await?
    } else {
        StateDb::sqlite().await?
    };
    let result = async {
        let mut raw = settings(&db.url, shop_url, &fake, &cfg);
        raw.worker.concurrency = config.concurrency;
        let s = raw.validate()?;
        let store = StateStore::connect_lazy(&s.state)?;
        store.migrate().await?;
        for i in 0..PROCESS_N {
            store
                .enqueue(&queued_event(CUSTOMERS[i % CUSTOMERS.len()]), Millis::now())
                .await?;
        }
        let start = Instant::now();
        let app = RunningApp::start(s).await?;
        let deadline = start + Duration::from_secs(60);
        let elapsed = loop {
            let n: i64 = sqlx::query_scalar("select count(*) from audit")
                .fetch_one(store.pool())
                .await?;
            if n as usize >= PROCESS_N {
                break start.elapsed();
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {n} of {PROCESS_N} jobs done"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let text = http
            .get(format!("{}/metrics", app.base))
            .send()
            .await?
            .text()
            .await?;
        app.stop().await;
        let lookup_mean = match (
            metric(&text, "ltv_tagger_order_lookup_seconds_sum"),
            metric(&text, "ltv_tagger_order_lookup_seconds_count"),
        ) {
            (Some(sum), Some(n)) if n > 0.0 => Duration::from_secs_f64(sum / n),
            _ => Duration::ZERO,
        };
        let outcomes: Vec<(String, i64)> =
            sqlx::query_as("select outcome, count(*) from audit group by outcome order by outcome")
                .fetch_all(store.pool())
                .await?;
        let outcomes = outcomes
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        store.pool().close().await;
        let tag_writes = fake
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.status == 200)
            .count();
        Ok::<_, anyhow::Error>(ProcessRound {
            elapsed,
            tag_writes,
            outcomes,
            lookup_mean,
        })
    }
    .await;
    db.drop_db().await;
    result
}

async fn process_section(
    table: &mut Table,
    shop_url: &str,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let configs = [
        ProcessConfig {
            name: "concurrency 1, state on SQLite",
            concurrency: 1,
            postgres: false,
        },
        ProcessConfig {
            name: "concurrency 8, state on SQLite",
            concurrency: 8,
            postgres: false,
        },
        ProcessConfig {
            name: "concurrency 8, state on PostgreSQL",
            concurrency: 8,
            postgres: true,
        },
    ];
    println!(
        "\n[process] {PROCESS_ROUNDS} rounds × {PROCESS_N} queued jobs per configuration, alternating"
    );
    let n = configs.len();
    let mut rates: Vec<Vec<f64>> = vec![vec![]; n];
    let mut lookups: Vec<Vec<f64>> = vec![vec![]; n];
    let mut last = vec![(0usize, String::new()); n];
    for round in 0..PROCESS_ROUNDS {
        for k in 0..n {
            let i = (round + k) % n;
            let r = process_round(shop_url, &configs[i], http).await?;
            let rate = PROCESS_N as f64 / r.elapsed.as_secs_f64();
            println!(
                "  round {round} {:<36} {rate:>6.0} jobs/s ({}, order lookup mean {})",
                configs[i].name,
                fmt_dur(r.elapsed),
                fmt_dur(r.lookup_mean)
            );
            rates[i].push(rate);
            lookups[i].push(r.lookup_mean.as_nanos() as f64);
            last[i] = (r.tag_writes, r.outcomes);
        }
    }
    let med: Vec<f64> = rates.iter().map(|r| median(r)).collect();
    for (i, c) in configs.iter().enumerate() {
        let lo = rates[i].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates[i].iter().copied().fold(0.0, f64::max);
        table.add(
            "process",
            format!("queued → audited, {}", c.name),
            format!("{:.0} jobs/s", med[i]),
            format!("rounds {lo:.0}–{hi:.0}/s"),
            format!(
                "lookup {}; {} writes/round; {}",
                fmt_ns(median(&lookups[i])),
                last[i].0,
                last[i].1
            ),
        );
    }
    table.add(
        "process",
        "ratio concurrency 8 / 1 (SQLite)",
        format!("{:.2}×", med[1] / med[0]),
        format!("SQLite / PostgreSQL at c8: {:.2}×", med[1] / med[2]),
        "",
    );
    Ok(())
}

// ---- 4b: the cost of a claim against the size of the backlog -----------------------------------

/// Adds `n` due jobs for distinct tickets in one statement.
async fn add_backlog(store: &StateStore, from: usize, n: usize) -> anyhow::Result<()> {
    sqlx::query(
        "insert into job (source, ticket_id, requester_email, ticket_tags, event_count, state,
                          attempts, run_at, created_at, updated_at)
         with recursive seq(x) as (select $1 union all select x + 1 from seq where x < $2)
         select 'zendesk', cast(x as text), 'big.spender@example.com', 'web', 1, 'queued',
                0, 0, 0, 0
         from seq",
    )
    .bind(i64::try_from(from)?)
    .bind(i64::try_from(from + n - 1)?)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Median time of `StateStore::claim(8)` with about `backlog` due jobs waiting. The claimed jobs
/// are marked done (untimed) so the backlog stays the same.
async fn time_claims(store: &StateStore, samples: usize) -> anyhow::Result<Vec<f64>> {
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let jobs = store
            .claim("bench", 8, Duration::from_secs(30), Millis::now())
            .await?;
        v.push(t.elapsed().as_nanos() as f64);
        anyhow::ensure!(jobs.len() == 8, "claimed {} jobs", jobs.len());
        sqlx::query("update job set state = 'done' where state = 'running'")
            .execute(store.pool())
            .await?;
    }
    Ok(v)
}

async fn claim_section(table: &mut Table) -> anyhow::Result<()> {
    const SMALL: usize = 1_000;
    const LARGE: usize = 30_000;
    const SAMPLES: usize = 25;
    println!("\n[claim] StateStore::claim(8) with {SMALL} vs {LARGE} due jobs waiting");
    let dbs = [
        ("SQLite", StateDb::sqlite().await?),
        ("PostgreSQL", StateDb::postgres().await?),
    ];
    let result = async {
        let mut stores = Vec::new();
        for (_, db) in &dbs {
            let mut st = RawSettings::load(None, "LTV_TAGGER_BENCH_UNSET")?.state;
            st.url = db.url.clone();
            let store = StateStore::connect_lazy(&st)?;
            store.migrate().await?;
            stores.push(store);
        }
        let mut out = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            add_backlog(store, 1, SMALL + SAMPLES * 8).await?;
            let small = time_claims(store, SAMPLES).await?;
            add_backlog(store, SMALL + SAMPLES * 8 + 1, LARGE - SMALL).await?;
            let large = time_claims(store, SAMPLES).await?;
            println!(
                "  {:<10} {} → {}",
                dbs[i].0,
                fmt_ns(median(&small)),
                fmt_ns(median(&large))
            );
            out.push((small, large));
            store.pool().close().await;
        }
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    for (_, db) in &dbs {
        db.drop_db().await;
    }
    for ((name, _), (small, large)) in dbs.iter().zip(result?) {
        let (s, l) = (median(&small), median(&large));
        table.add(
            "claim",
            format!("StateStore::claim(8), {SMALL} due, {name}"),
            fmt_ns(s),
            micro_spread(&small),
            "",
        );
        table.add(
            "claim",
            format!("StateStore::claim(8), {LARGE} due, {name}"),
            fmt_ns(l),
            micro_spread(&large),
            format!("{:.1}× the {SMALL}-job claim", l / s),
        );
    }
    Ok(())
}

// ---- 5: memory under backlog, the real binary --------------------------------------------------

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Median of 5 readings over half a second.
async fn steady_rss(pid: u32) -> anyhow::Result<u64> {
    let mut v = Vec::new();
    for _ in 0..5 {
        v.push(rss_kib(pid)?.0 as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(median(&v) as u64)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

struct MemoryRun {
    idle: u64,
    /// RSS after each burst, KiB.
    after: Vec<u64>,
    hwm: u64,
    rates: Vec<f64>,
    waiting: i64,
    attempts: i64,
    failed_calls: usize,
    /// Size of the SQLite state files, if SQLite.
    db_bytes: Option<u64>,
}

/// Starts `ltv-tagger serve` on `state_url` with the helpdesk down, reads its RSS idle and after
/// each burst of `BACKLOG_N` webhooks.
async fn memory_run(
    label: &str,
    state_url: &str,
    sqlite_dir: Option<&Path>,
    shop_url: &str,
    http: &reqwest::Client,
) -> anyhow::Result<MemoryRun> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ltv-tagger"));
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await?;
    fake.fail_for(Duration::from_secs(3600), 503);
    let logdir = tempfile::tempdir()?;
    let log = logdir.path().join("serve.log");
    let port = free_port()?;
    // Defaults otherwise: worker.concurrency 8, zendesk.requests_per_minute 400, JSON logs.
    let mut child = tokio::process::Command::new(&binary)
        .arg("serve")
        .env("LTV_TAGGER__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("LTV_TAGGER__SERVER__LOG_FORMAT", "json")
        .env("LTV_TAGGER__STATE__URL", state_url)
        .env("LTV_TAGGER__ORDERS__URL", shop_url)
        .env("LTV_TAGGER__ZENDESK__API_BASE_URL", fake.base_url())
        .env("LTV_TAGGER__ZENDESK__EMAIL", &cfg.zendesk_email)
        .env("LTV_TAGGER__ZENDESK__API_TOKEN", &cfg.zendesk_token)
        .env("LTV_TAGGER__ZENDESK__WEBHOOK_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .env_remove("LTV_TAGGER_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log)?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let pid = child.id().context("child pid")?;
    let base = format!("http://127.0.0.1:{port}");
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "ltv-tagger serve did not become ready; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "\n[memory] ltv-tagger serve (pid {pid}), state on {label}, helpdesk answering 503, \
             {BACKLOG_BURSTS} bursts × {BACKLOG_N}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = steady_rss(pid).await?;
        println!("  idle: RSS {}", fmt_mib(idle));
        let mut after = Vec::new();
        let mut rates = Vec::new();
        for burst in 0..BACKLOG_BURSTS {
            let load = fire(
                http,
                &base,
                prepare(BACKLOG_N, CUSTOMERS[0]),
                INGEST_CLIENTS,
            )
            .await;
            check(&load, "backlog burst");
            rates.push(load.per_sec());
            // Let the workers take their (failing) turns at the backlog before reading.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss = steady_rss(pid).await?;
            println!(
                "  burst {burst}: {:.0} webhooks/s, RSS {}",
                load.per_sec(),
                fmt_mib(rss)
            );
            after.push(rss);
        }
        let (_, hwm) = rss_kib(pid)?;
        let mut st = RawSettings::load(None, "LTV_TAGGER_BENCH_UNSET")?.state;
        st.url = state_url.to_string();
        let store = StateStore::connect_lazy(&st)?;
        let (waiting, attempts): (i64, i64) = sqlx::query_as(
            "select count(*), cast(coalesce(sum(attempts), 0) as bigint) from job
             where state in ('queued', 'running')",
        )
        .fetch_one(store.pool())
        .await?;
        store.pool().close().await;
        Ok::<_, anyhow::Error>(MemoryRun {
            idle,
            after,
            hwm,
            rates,
            waiting,
            attempts,
            failed_calls: fake.count_status(503),
            db_bytes: sqlite_dir.map(dir_size),
        })
    }
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}

async fn memory_section(
    table: &mut Table,
    shop_url: &str,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let sqlite = StateDb::sqlite().await?;
    let dir = PathBuf::from(sqlite.url.trim_start_matches("sqlite://"))
        .parent()
        .map(Path::to_path_buf);
    let pg = StateDb::postgres().await?;
    let runs = async {
        let a = memory_run("SQLite", &sqlite.url, dir.as_deref(), shop_url, http).await?;
        let b = memory_run("PostgreSQL", &pg.url, None, shop_url, http).await?;
        Ok::<_, anyhow::Error>([("SQLite", a), ("PostgreSQL", b)])
    }
    .await;
    pg.drop_db().await;
    for (label, r) in runs? {
        table.add(
            "memory",
            format!("RSS idle, state on {label}"),
            fmt_mib(r.idle),
            "",
            "ltv-tagger serve, median of 5 readings",
        );
        for (i, rss) in r.after.iter().enumerate() {
            let queued = (i + 1) * BACKLOG_N;
            let note = if i == 0 {
                format!("ingested at {:.0}/s with workers failing", r.rates[0])
            } else {
                let per = (*rss as f64 - r.after[i - 1] as f64) * 1024.0 / BACKLOG_N as f64;
                format!("{per:+.0} B per extra queued webhook")
            };
            table.add(
                "memory",
                format!("RSS with {queued} queued, helpdesk 503, {label}"),
                fmt_mib(*rss),
                format!("{:.2}× idle", *rss as f64 / r.idle as f64),
                note,
            );
        }
        let disk = r.db_bytes.map_or(String::new(), |b| {
            format!("{:.1} MiB on disk", b as f64 / (1024.0 * 1024.0))
        });
        table.add(
            "memory",
            format!("backlog left in the DB, {label}"),
            format!("{} jobs", r.waiting),
            disk,
            format!(
                "{} attempts, {} answered 503; peak RSS {}",
                r.attempts,
                r.failed_calls,
                fmt_mib(r.hwm)
            ),
        );
    }
    Ok(())
}

// ---- main ---------------------------------------------------------------------------------------

struct Sections(Vec<String>);

impl Sections {
    fn from_args() -> Sections {
        Sections(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with("--"))
                .collect(),
        )
    }

    fn on(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|w| name.contains(w.as_str()))
    }
}

fn main() -> anyhow::Result<()> {
    let sections = Sections::from_args();
    let started = Instant::now();
    let mut table = Table::default();
    println!(
        "ltv-tagger ingest benchmarks — {} CPUs, medians, configurations side by side",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    micro_section(&mut table, &sections);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shop_dir = tempfile::tempdir()?;
        let shop_path = shop_dir.path().join("shop.db");
        create_sample_shop(&shop_path).await?;
        let shop_url = format!("sqlite://{}", shop_path.display());
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(INGEST_CLIENTS)
            .timeout(Duration::from_secs(30))
            .build()?;
        if sections.on("ingest") {
            ingest_section(&mut table, &shop_url, &http).await?;
        }
        if sections.on("process") {
            process_section(&mut table, &shop_url, &http).await?;
        }
        if sections.on("claim") {
            claim_section(&mut table).await?;
        }
        if sections.on("memory") {
            memory_section(&mut table, &shop_url, &http).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));

    table.print();
    println!("\n(total bench time {})", fmt_dur(started.elapsed()));
    Ok(())
}
