//! Bulk tag writes: 10,000 queued Zendesk tickets against the fake enforcing 400 requests/min and
//! the 30-job limit; time to tag them all and calls per tagged ticket, with the same run's
//! single-write baseline (the first tickets with bulk writes off, extrapolated).
//!
//! `cargo bench --bench bulk` (or `cargo test --bench bulk --` for a debug build; the run is bound
//! by the rate limit, not the CPU). `BULK_TICKETS` and `BASELINE_TICKETS` change the sizes.

use std::time::{Duration, Instant};

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig};
use tokio_util::sync::CancellationToken;

#[path = "support/shop.rs"]
mod shop;
#[path = "support/state_db.rs"]
mod state_db;
use shop::{enqueue_trigger, env_or, CUSTOMERS};
use state_db::StateDb;

const PER_MINUTE: u32 = 400;

struct Run {
    elapsed: Duration,
    calls: usize,
    bulk_calls: usize,
    rate_limited: usize,
    violations: usize,
    max_jobs: usize,
}

/// Queues `tickets` jobs, runs a worker until they all have an audit row.
async fn run(tickets: usize, bulk_after: Duration, shop_url: &str) -> anyhow::Result<Run> {
    let cfg = FakeHelpdeskConfig {
        zendesk_limit_per_minute: Some(PER_MINUTE),
        ..FakeHelpdeskConfig::default()
    };
    let fake = FakeHelpdesk::start(cfg.clone()).await?;
    // Zendesk processes a bulk job's tickets in the background: 10 ms each here.
    fake.set_bulk_ticket_time(Duration::from_millis(10));
    let state = StateDb::sqlite().await?;
    let settings = shop::settings(&state.url, shop_url, &fake, &cfg, PER_MINUTE, |raw| {
        raw.zendesk.bulk_after = bulk_after;
    })?;
    let (store, worker) = shop::worker(&settings).await?;
    for n in 0..tickets {
        let email = format!("c{}@shop.test", n % CUSTOMERS);
        enqueue_trigger(&store, n as u64 + 1, &email, format!("bench:{n}")).await?;
    }
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(5)));
    loop {
        let done: i64 = sqlx::query_scalar("select count(*) from audit")
            .fetch_one(store.pool())
            .await?;
        if done as usize >= tickets {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = task.await;
    let requests = fake.requests();
    Ok(Run {
        elapsed,
        calls: requests.len(),
        bulk_calls: requests
            .iter()
            .filter(|r| r.path.contains("update_many") || r.path.contains("job_statuses"))
            .count(),
        rate_limited: fake.rate_limited(),
        violations: fake.violations().len(),
        max_jobs: fake.max_active_bulk_jobs(),
    })
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let tickets = env_or("BULK_TICKETS", 10_000);
        let baseline = env_or("BASELINE_TICKETS", 300);
        let dir = tempfile::tempdir()?;
        let shop_url = shop::shop(dir.path()).await?;
        println!("bulk tag writes: {tickets} queued Zendesk tickets, fake at {PER_MINUTE}/min and 30 jobs");
        // Baseline: bulk off (the threshold far above the backlog), the first tickets.
        let single = run(baseline, Duration::from_secs(3600), &shop_url).await?;
        let single_rate = baseline as f64 / single.elapsed.as_secs_f64();
        println!(
            "single writes, {baseline} tickets: {:.1} s, {:.2} tickets/s, {:.2} calls/ticket, 429s {}, violations {}; extrapolated to {tickets}: {:.1} min",
            single.elapsed.as_secs_f64(),
            single_rate,
            single.calls as f64 / baseline as f64,
            single.rate_limited,
            single.violations,
            tickets as f64 / single_rate / 60.0
        );
        let bulk = run(tickets, Duration::from_secs(10), &shop_url).await?;
        println!(
            "bulk (bulk_after 10s), {tickets} tickets: {:.1} s ({:.2} min), {:.1} tickets/s, {} calls ({} bulk), {:.4} calls/ticket, 429s {}, violations {}, most jobs at once {}",
            bulk.elapsed.as_secs_f64(),
            bulk.elapsed.as_secs_f64() / 60.0,
            tickets as f64 / bulk.elapsed.as_secs_f64(),
            bulk.calls,
            bulk.bulk_calls,
            bulk.calls as f64 / tickets as f64,
            bulk.rate_limited,
            bulk.violations,
            bulk.max_jobs
        );
        println!(
            "speed-up over the same run's single-write rate: {:.1}x",
            (tickets as f64 / bulk.elapsed.as_secs_f64()) / single_rate
        );
        anyhow::Ok(())
    })
}
