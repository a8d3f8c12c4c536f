//! Group-commit ingest benchmark (`cargo bench --bench group_commit`; method and results in
//! BENCHMARKS.md, section "Group commit").
//!
//! Per state DB (a SQLite file, the local PostgreSQL), side by side in one run:
//! 1. baseline: one transaction per event, `StateStore::enqueue` from 16 and 64 concurrent
//!    callers in this process (no HTTP, no signature, no parsing): the single-row commit rate;
//! 2. the release binary `ltv-tagger serve` as a child process, group commit on (defaults) and off
//!    (`state.group_commit_max_batch = 1`), 16 and 64 closed-loop HTTP clients: webhooks/s, and
//!    the child's CPU per webhook (utime + stime from `/proc/<pid>/stat`);
//! 3. open loop at 1,000 webhooks/s for 3 s against the group-commit binary: p50/p99 latency
//!    measured from each request's scheduled send time (so a stall is not hidden by waiting).
//!
//! Each of `ROUNDS` rounds runs all three in turn (medians reported; latencies pooled). The child
//! inherits the bench's environment, so `LTV_TAGGER__STATE__GROUP_COMMIT_WINDOW=1ms cargo bench …`
//! measures another setting.
//!
//! `GROUP_COMMIT_BEFORE_BIN=/path/to/ltv-tagger` adds a fourth measurement to every round: that
//! build's group commit (defaults, its own fresh state DB) and its own open loop, so an earlier
//! build is compared side by side with this one against the same baseline.
//!
//! Pass words after `--` to run only the backends whose names contain one of them
//! (`cargo bench --bench group_commit -- sqlite`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig};
use ltv_tagger::clock::Millis;
use ltv_tagger::config::RawSettings;
use ltv_tagger::demo::create_sample_shop;
use ltv_tagger::domain::{CustomerEmail, Requester, Source, TicketId};
use ltv_tagger::http::webhooks::zendesk;
use ltv_tagger::state::{NewEvent, StateStore};

#[path = "support/state_db.rs"]
mod state_db;
use state_db::StateDb;

const SECRET: &str = "bench-group-commit-secret";
const EMAIL: &str = "big.spender@example.com";
const CLIENTS: [usize; 2] = [16, 64];
/// Events per baseline measurement, webhooks per closed-loop measurement, warm-up.
const BASELINE_N: usize = 3000;
const HTTP_N: usize = 6000;
const WARMUP_N: usize = 500;
/// Open loop: rate and duration.
const OPEN_RATE: u64 = 1000;
const OPEN_SECS: u64 = 3;
/// Rounds of every measurement, alternating.
const ROUNDS: usize = 3;
/// Linux reports utime/stime in USER_HZ ticks, 100 per second on every mainstream architecture.
const USER_HZ: f64 = 100.0;

static NEXT_TICKET: AtomicU64 = AtomicU64::new(1_000_000);

fn next_ticket() -> u64 {
    NEXT_TICKET.fetch_add(1, Ordering::Relaxed)
}

fn trigger_body(ticket: u64) -> String {
    serde_json::json!({
        "ticket_id": ticket.to_string(),
        "requester_email": EMAIL,
        "requester_id": "",
        "tags": "",
    })
    .to_string()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    pct(&sorted(v.to_vec()), 0.5)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The state store on `db`, migrated.
async fn migrated_store(db: &StateDb) -> anyhow::Result<StateStore> {
    let mut st = RawSettings::load(None, "LTV_TAGGER_BENCH_UNSET")?.state;
    st.url = db.url.clone();
    let store = StateStore::connect_lazy(&st)?;
    store.migrate().await?;
    Ok(store)
}

/// Events/s of one transaction per event from `callers` concurrent callers.
async fn baseline(store: &StateStore, callers: usize, n: usize) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (store, next) = (store.clone(), next.clone());
        set.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let ticket = next_ticket();
                let ev = NewEvent {
                    source: Source::Zendesk,
                    ticket_id: TicketId::parse(&ticket.to_string()).map_err(anyhow::Error::msg)?,
                    event_type: "ticket.created".into(),
                    requester: Some(Requester::Email(
                        CustomerEmail::parse(EMAIL).map_err(anyhow::Error::msg)?,
                    )),
                    ticket_tags: vec![],
                    ticket_updated_at: None,
                    dedupe_key: format!("delivery:{}", uuid::Uuid::new_v4()),
                    body: trigger_body(ticket),
                };
                store.enqueue(&ev, Millis::now()).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One signed delivery, prepared before the clock starts.
struct Prepared {
    body: Bytes,
    signature: String,
    timestamp: String,
    invocation: String,
}

fn prepare(n: usize) -> Arc<Vec<Prepared>> {
    let timestamp = zendesk::timestamp(Utc::now());
    Arc::new(
        (0..n)
            .map(|_| {
                let body = trigger_body(next_ticket());
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

async fn send(http: &reqwest::Client, url: &str, p: &Prepared) -> anyhow::Result<()> {
    let res = http
        .post(url)
        .header(zendesk::SIGNATURE_HEADER, &p.signature)
        .header(zendesk::TIMESTAMP_HEADER, &p.timestamp)
        .header(zendesk::INVOCATION_HEADER, &p.invocation)
        .header("content-type", "application/json")
        .body(p.body.clone())
        .send()
        .await?;
    let status = res.status().as_u16();
    let _ = res.bytes().await;
    anyhow::ensure!(status == 202, "HTTP {status}");
    Ok(())
}

/// Closed loop: `clients` clients send every prepared delivery; webhooks/s.
async fn closed_loop(
    http: &reqwest::Client,
    base: &str,
    reqs: Arc<Vec<Prepared>>,
    clients: usize,
) -> anyhow::Result<f64> {
    let url = format!("{base}/webhooks/zendesk");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url, reqs, next) = (http.clone(), url.clone(), reqs.clone(), next.clone());
        set.spawn(async move {
            while let Some(p) = reqs.get(next.fetch_add(1, Ordering::Relaxed)) {
                send(&http, &url, p).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(reqs.len() as f64 / start.elapsed().as_secs_f64())
}

/// Open loop at `OPEN_RATE`/s: latencies (ns) from each request's scheduled send time.
async fn open_loop(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<f64>> {
    let n = (OPEN_RATE * OPEN_SECS) as usize;
    let reqs = prepare(n);
    let url = Arc::new(format!("{base}/webhooks/zendesk"));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let at = start + Duration::from_micros(i as u64 * 1_000_000 / OPEN_RATE);
        let (http, url, reqs) = (http.clone(), url.clone(), reqs.clone());
        set.spawn(async move {
            tokio::time::sleep_until(at).await;
            send(&http, &url, &reqs[i]).await?;
            Ok::<_, anyhow::Error>(at.elapsed().as_nanos() as f64)
        });
    }
    let mut lat = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        lat.push(r??);
    }
    Ok(sorted(lat))
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc/<pid>/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(f.get(i - 3).context("stat field")?.parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / USER_HZ)
}

/// The release binary serving on `state_url`, its worker kept out of the way.
struct Serve {
    child: tokio::process::Child,
    pid: u32,
    base: String,
}

async fn serve(
    binary: &std::path::Path,
    state_url: &str,
    shop_url: &str,
    fake: &FakeHelpdesk,
    cfg: &FakeHelpdeskConfig,
    max_batch: usize,
    http: &reqwest::Client,
) -> anyhow::Result<Serve> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(binary)
        .arg("serve")
        .env("LTV_TAGGER__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("LTV_TAGGER__SERVER__LOG_FORMAT", "json")
        .env("LTV_TAGGER__SERVER__MAX_CONNECTIONS", "1024")
        .env("LTV_TAGGER__STATE__URL", state_url)
        .env(
            "LTV_TAGGER__STATE__GROUP_COMMIT_MAX_BATCH",
            max_batch.to_string(),
        )
        .env("LTV_TAGGER__ORDERS__URL", shop_url)
        .env("LTV_TAGGER__WORKER__CONCURRENCY", "1")
        .env("LTV_TAGGER__WORKER__POLL_INTERVAL", "1h")
        .env("LTV_TAGGER__ZENDESK__REQUEST_TIMEOUT", "1h")
        // No bulk rounds either: single writes would clear any backlog here within
        // `bulk_after`, so the dispatcher never claims jobs for `update_many`.
        .env("LTV_TAGGER__ZENDESK__REQUESTS_PER_MINUTE", "1000000")
        .env("LTV_TAGGER__ZENDESK__BULK_AFTER", "1h")
        .env("LTV_TAGGER__ZENDESK__API_BASE_URL", fake.base_url())
        .env("LTV_TAGGER__ZENDESK__EMAIL", &cfg.zendesk_email)
        .env("LTV_TAGGER__ZENDESK__API_TOKEN", &cfg.zendesk_token)
        .env("LTV_TAGGER__ZENDESK__WEBHOOK_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .env_remove("LTV_TAGGER_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let binary = binary.display();
    let pid = child.id().context("child pid")?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{binary} serve not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Serve { child, pid, base })
}

/// The child's committed batches so far: (batches, events), from `/metrics`.
async fn batches(s: &Serve, http: &reqwest::Client) -> anyhow::Result<(f64, f64)> {
    let text = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    let value = |name: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} not in /metrics"))?;
        Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
    };
    Ok((
        value("ltv_tagger_ingest_commit_batch_size_count")?,
        value("ltv_tagger_ingest_commit_batch_size_sum")?,
    ))
}

/// One closed-loop measurement: webhooks/s, CPU µs per webhook, events per committed batch.
async fn measure(
    s: &Serve,
    http: &reqwest::Client,
    clients: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let reqs = prepare(HTTP_N);
    let (b0, e0) = batches(s, http).await?;
    let cpu0 = cpu_secs(s.pid)?;
    let rate = closed_loop(http, &s.base, reqs, clients).await?;
    let cpu = cpu_secs(s.pid)? - cpu0;
    let (b1, e1) = batches(s, http).await?;
    Ok((
        rate,
        cpu * 1e6 / HTTP_N as f64,
        (e1 - e0) / (b1 - b0).max(1.0),
    ))
}

async fn backend(
    name: &str,
    postgres: bool,
    shop_url: &str,
    http: &reqwest::Client,
    rows: &mut Vec<String>,
) -> anyhow::Result<()> {
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await?;
    fake.set_latency(Duration::from_secs(3600));
    println!("\n[{name}]");
    let base_db = StateDb::create(postgres).await?;
    let grouped_db = StateDb::create(postgres).await?;
    let single_db = StateDb::create(postgres).await?;
    let before_bin = std::env::var_os("GROUP_COMMIT_BEFORE_BIN").map(PathBuf::from);
    let before_db = StateDb::create(postgres).await?;
    let result = async {
        let store = migrated_store(&base_db).await?;
        baseline(&store, 16, WARMUP_N).await?;
        let this = PathBuf::from(env!("CARGO_BIN_EXE_ltv-tagger"));
        let grouped = serve(&this, &grouped_db.url, shop_url, &fake, &cfg, 128, http).await?;
        let single = serve(&this, &single_db.url, shop_url, &fake, &cfg, 1, http).await?;
        let before = match &before_bin {
            Some(bin) => Some(serve(bin, &before_db.url, shop_url, &fake, &cfg, 128, http).await?),
            None => None,
        };
        for s in [Some(&grouped), Some(&single), before.as_ref()].into_iter().flatten() {
            closed_loop(http, &s.base, prepare(WARMUP_N), 16).await?;
        }
        // The earlier build's group commit, per clients: rates and CPU per webhook by round.
        let mut earlier: Vec<[Vec<f64>; 2]> = CLIENTS.iter().map(|_| Default::default()).collect();
        // Rounds alternate the three measurements, so drift on the machine hits them alike;
        // the table gives the median of the rounds and the range of the ratios.
        let mut m: Vec<[Vec<f64>; 6]> = CLIENTS.iter().map(|_| Default::default()).collect();
        let (mut lat, mut before_lat) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (k, clients) in CLIENTS.into_iter().enumerate() {
                let base = baseline(&store, clients, BASELINE_N).await?;
                let (g, g_cpu, g_batch) = measure(&grouped, http, clients).await?;
                let (s1, s1_cpu, _) = measure(&single, http, clients).await?;
                println!("  {clients} clients: baseline {base:.0}/s, group commit {g:.0}/s ({:.2}×, {g_cpu:.0} µs, {g_batch:.1} events/batch), max_batch 1 {s1:.0}/s", g / base);
                if let Some(b) = &before {
                    let (e, e_cpu, e_batch) = measure(b, http, clients).await?;
                    println!("  {clients} clients: before build {e:.0}/s ({:.2}×, {e_cpu:.0} µs, {e_batch:.1} events/batch)", e / base);
                    earlier[k][0].push(e / base);
                    earlier[k][1].push(e_cpu);
                }
                for (v, x) in m[k].iter_mut().zip([base, g, g_cpu, s1, s1_cpu, g_batch]) {
                    v.push(x);
                }
            }
            lat.extend(open_loop(http, &grouped.base).await?);
            if let Some(b) = &before {
                before_lat.extend(open_loop(http, &b.base).await?);
            }
        }
        for (k, clients) in CLIENTS.into_iter().enumerate() {
            let [base, g, g_cpu, s1, s1_cpu, g_batch] = &m[k];
            let ratios = sorted(g.iter().zip(base).map(|(g, b)| g / b).collect());
            let (base, g, s1) = (median(base), median(g), median(s1));
            let line = format!(
                "| {name} | {clients} | {base:.0}/s | {g:.0}/s ({:.2}×; rounds {:.2}–{:.2}×) | {:.0} µs | {:.1} | \
                 {s1:.0}/s ({:.2}×) | {:.0} µs |",
                g / base,
                ratios[0],
                ratios[ratios.len() - 1],
                median(g_cpu),
                median(g_batch),
                s1 / base,
                median(s1_cpu)
            );
            println!("{line}");
            rows.push(line);
            let [ratio, cpu] = &earlier[k];
            if let (Some(low), Some(high)) = (
                ratio.iter().copied().reduce(f64::min),
                ratio.iter().copied().reduce(f64::max),
            ) {
                let line = format!(
                    "| {name} | {clients} | before build: {:.2}× baseline (median of rounds; rounds {low:.2}–{high:.2}×) | {:.0} µs | | | |",
                    median(ratio),
                    median(cpu)
                );
                println!("{line}");
                rows.push(line);
            }
        }
        for (build, lat) in [("", lat), (" (before build)", before_lat)] {
            if lat.is_empty() {
                continue;
            }
            let lat = sorted(lat);
            let line = format!(
                "| {name}{build} | open loop {OPEN_RATE}/s × {OPEN_SECS}s × {ROUNDS} | p50 {:.2} ms | p99 {:.2} ms | \
                 max {:.2} ms |",
                pct(&lat, 0.5) / 1e6,
                pct(&lat, 0.99) / 1e6,
                pct(&lat, 1.0) / 1e6
            );
            println!("{line}");
            rows.push(line);
        }
        let counted: i64 = sqlx::query_scalar("select count(*) from inbox")
            .fetch_one(migrated_store(&grouped_db).await?.pool())
            .await?;
        println!("  ({counted} events committed by the group-commit binary)");
        for mut s in [Some(grouped), Some(single), before].into_iter().flatten() {
            let _ = s.child.start_kill();
            let _ = s.child.wait().await;
        }
        store.pool().close().await;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for db in [&base_db, &grouped_db, &single_db, &before_db] {
        db.drop_db().await;
    }
    result
}

fn main() -> anyhow::Result<()> {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.to_lowercase())
        .collect();
    let on = |name: &str| words.is_empty() || words.iter().any(|w| name.contains(w.as_str()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shop_dir = tempfile::tempdir()?;
        let shop_path = shop_dir.path().join("shop.db");
        create_sample_shop(&shop_path).await?;
        let shop_url = format!("sqlite://{}", shop_path.display());
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut rows = Vec::new();
        for (name, postgres) in [("sqlite", false), ("postgres", true)] {
            if on(name) {
                backend(name, postgres, &shop_url, &http, &mut rows).await?;
            }
        }
        println!(
            "\n| state DB | clients | one transaction per event (baseline) | group commit (× baseline) | \
             CPU/webhook | events/batch | group_commit_max_batch = 1 (× baseline) | CPU/webhook |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            println!("{r}");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
