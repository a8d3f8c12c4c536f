//! `backfill zendesk` over 20,000 open tickets against the fake's rate limit: the rate it lists and queues at against its
//! `backfill.budget_share` of the limit (its ceiling), the time until every ticket is tagged, and how long live tickets
//! queued meanwhile wait for their tag.
//!
//! The backfill (`ltv_tagger::backfill::run`, as the CLI runs it) and a worker run in one process on a SQLite state
//! DB; the fake enforces `PER_MINUTE` requests a minute. Every `LIVE_EVERY` a live ticket is queued as a webhook would
//! queue it, and the time until its audit row is recorded. `cargo bench --bench backfill` (or `cargo test --bench
//! backfill --` for a debug build); `BACKFILL_TICKETS`, `BACKFILL_PER_MINUTE` and `BACKFILL_SHARE` change the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig, Helpdesk};
use ltv_tagger::backfill::{BackfillArgs, Progress, Report};
use ltv_tagger::domain::Source;
use ltv_tagger::state::StateStore;
use tokio_util::sync::CancellationToken;

#[path = "support/shop.rs"]
mod shop;
#[path = "support/state_db.rs"]
mod state_db;
use shop::{enqueue_trigger, env_or, CUSTOMERS};
use state_db::StateDb;

const LIVE_EVERY: Duration = Duration::from_secs(2);
/// Live ticket ids start here, above any backfilled one.
const LIVE_BASE: u64 = 10_000_000;

/// Counts pages; prints a line every tenth.
#[derive(Default)]
struct Pages(u64);

impl Progress for Pages {
    fn start(&mut self, total: Option<u64>, _done_before: u64) {
        println!("  listing: the helpdesk counts {total:?} tickets");
    }
    fn page(&mut self, report: &Report) {
        self.0 += 1;
        if self.0 % 10 == 0 {
            println!(
                "  listing: {} listed, {} queued",
                report.listed, report.queued
            );
        }
    }
}

async fn audited(store: &StateStore, ticket: u64) -> anyhow::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from audit where source = 'zendesk' and ticket_id = $1",
    )
    .bind(ticket.to_string())
    .fetch_one(store.pool())
    .await?;
    Ok(n > 0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let tickets: u64 = env_or("BACKFILL_TICKETS", 20_000);
        let per_minute: u32 = env_or("BACKFILL_PER_MINUTE", 12_000);
        let share: f64 = env_or("BACKFILL_SHARE", 0.5);
        let dir = tempfile::tempdir()?;
        let shop_url = shop::shop(dir.path()).await?;
        let cfg = FakeHelpdeskConfig {
            zendesk_limit_per_minute: Some(per_minute),
            ..FakeHelpdeskConfig::default()
        };
        let fake = FakeHelpdesk::start(cfg.clone()).await?;
        for i in 0..CUSTOMERS {
            fake.add_zendesk_user(&(i + 1).to_string(), &format!("c{i}@shop.test"));
        }
        for t in 1..=tickets {
            let requester = (t as usize % CUSTOMERS + 1).to_string();
            fake.add_listed_ticket(Helpdesk::Zendesk, t, "open", &requester, Duration::from_secs(3600));
        }
        let state = StateDb::sqlite().await?;
        let settings = shop::settings(&state.url, &shop_url, &fake, &cfg, per_minute, |raw| {
            raw.backfill.budget_share = share;
        })?;
        let (store, worker) = shop::worker(&settings).await?;
        let ceiling = f64::from(per_minute) * share / 60.0;
        println!(
            "backfill: {tickets} open Zendesk tickets, fake at {per_minute}/min, budget_share {share} \
             (ceiling {ceiling:.1} calls/s; one token per page and per ticket queued)"
        );
        let stop = CancellationToken::new();
        let worker_task = tokio::spawn(worker.clone().run(stop.clone(), Duration::from_secs(5)));
        let started = Instant::now();
        let args = BackfillArgs {
            source: Source::Zendesk,
            since: None,
            statuses: vec!["open".into()],
            dry_run: false,
        };
        // The backfill runs on this task (its progress is not `Send`); the live tickets and the
        // count of audit rows on another. `listed` is set when the backfill has queued all.
        let listed: Arc<std::sync::OnceLock<Instant>> = Arc::default();
        let monitor = tokio::spawn({
            let (store, worker, listed) = (store.clone(), worker.clone(), listed.clone());
            async move {
                // Live tickets while the backfill runs: queued as the webhook would queue them.
                let mut live: Vec<(u64, Instant, Option<Duration>)> = Vec::new();
                let mut next_live = Instant::now();
                loop {
                    if listed.get().is_none() && Instant::now() >= next_live {
                        next_live += LIVE_EVERY;
                        let id = LIVE_BASE + live.len() as u64;
                        enqueue_trigger(&store, id, "c0@shop.test", format!("live:{id}"))
                            .await?;
                        worker.wake.notify_one();
                        live.push((id, Instant::now(), None));
                    }
                    for (id, at, took) in live.iter_mut().filter(|l| l.2.is_none()) {
                        if audited(&store, *id).await? {
                            *took = Some(at.elapsed());
                        }
                    }
                    let done: i64 = sqlx::query_scalar("select count(*) from audit")
                        .fetch_one(store.pool())
                        .await?;
                    if listed.get().is_some() && done as u64 >= tickets + live.len() as u64 {
                        return anyhow::Ok(live);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        let mut pages = Pages::default();
        let report = ltv_tagger::backfill::run(&settings, &args, &mut pages).await?;
        let _ = listed.set(Instant::now());
        let live = monitor.await??;
        let all_tagged = started.elapsed();
        stop.cancel();
        let _ = worker_task.await;
        let queue_secs = listed
            .get()
            .map_or(f64::NAN, |at| (*at - started).as_secs_f64());
        let requests = fake.requests();
        let listing_calls = requests
            .iter()
            .filter(|r| r.path.starts_with("/api/v2/search/") || r.path.starts_with("/api/v2/users/show_many"))
            .count();
        let tagged = (1..=tickets)
            .filter(|t| !fake.tags(Helpdesk::Zendesk, &t.to_string()).is_empty())
            .count();
        println!(
            "listed {} and queued {} in {queue_secs:.1} s: {:.1} tickets/s with {listing_calls} listing calls \
             ({:.2} of the share's ceiling, counting one token per ticket and per listing call)",
            report.listed,
            report.queued,
            report.queued as f64 / queue_secs,
            (report.queued as f64 + listing_calls as f64) / queue_secs / ceiling
        );
        println!(
            "all {tickets} backfilled tickets and {} live ones audited {:.1} s after the start; {tagged} tickets carry tags; \
             {} calls in all ({:.3} per ticket), 429s {}, violations {}",
            live.len(),
            all_tagged.as_secs_f64(),
            requests.len(),
            requests.len() as f64 / tickets as f64,
            fake.rate_limited(),
            fake.violations().len()
        );
        let mut waits: Vec<f64> = live.iter().filter_map(|l| l.2).map(|d| d.as_secs_f64()).collect();
        let max = waits.iter().copied().fold(0.0, f64::max);
        println!(
            "live tickets queued during the backfill: {} (median wait for the audit row {:.2} s, longest {max:.2} s)",
            waits.len(),
            median(&mut waits)
        );
        anyhow::Ok(())
    })
}
