//! The worker: claims due jobs under a lease, decides, writes tags, records the decision.
//!
//! | file | step |
//! |---|---|
//! | `mod.rs` | the dispatcher: free permits (`worker.concurrency`), claim batches, drain at shutdown |
//! | `job.rs` | one leased job: heartbeat, retry horizon, release on a hard stop |
//! | `pipeline.rs` | resolve requester → look up customer → decide → write |
//! | `shadow.rs` | shadow mode: record what would be written, write nothing |
//! | `annotate.rs` | the custom fields and the once-per-ticket note added to a write |
//! | `settle.rs` | finish, retry with backoff (or `Retry-After`), or dead-letter |
//! | `safe_write.rs` | the write as a Zendesk safe update: on 409 re-read the ticket, decide again |
//! | `bulk.rs` | a Zendesk backlog over `zendesk.bulk_after`: claimed in rounds, grouped by tags, settled per ticket |
//! | `bulk_job.rs` | one `update_many` job: queue it, poll its status under the budget; closed tickets |
//!
//! [`Worker::run_once`] claims and runs one job to its end with no timer, for tests.

mod annotate;
mod bulk;
mod bulk_job;
mod job;
mod pipeline;
mod safe_write;
mod settle;
mod shadow;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use settle::backoff;

use crate::clock::Millis;
use crate::config::WorkerSettings;
use crate::domain::Outcome;
use crate::helpdesk::Helpdesks;
use crate::metrics::Metrics;
use crate::orders::OrderDb;
use crate::reload::SharedPolicy;
use crate::state::StateStore;

/// Jobs claimed per round trip at most.
const CLAIM_BATCH: usize = 32;

/// Everything a worker needs; shared by the dispatcher and every job task.
pub struct Worker {
    pub store: StateStore,
    pub orders: OrderDb,
    /// The running policy; a configuration reload swaps it (every decision loads it afresh).
    pub policy: SharedPolicy,
    pub helpdesks: Helpdesks,
    pub metrics: Metrics,
    pub settings: WorkerSettings,
    /// This process's name on the leases it holds.
    pub owner: String,
    /// Woken by ingest when a job was queued, so the dispatcher does not wait for its poll.
    pub wake: Arc<Notify>,
}

impl Worker {
    /// Claims one due job and runs it to its end (no heartbeat, no timer). `None`: nothing was
    /// due; `Some(None)`: the job went back to the queue for a retry.
    pub async fn run_once(&self) -> Result<Option<Option<Outcome>>, sqlx::Error> {
        let mut jobs = self
            .store
            .claim(&self.owner, 1, self.settings.lease, Millis::now())
            .await?;
        let Some(job) = jobs.pop() else {
            return Ok(None);
        };
        let attempt = self.process(&job).await;
        Ok(Some(self.settle(&job, attempt).await))
    }

    /// Runs until `shutdown` is cancelled, then gives in-flight jobs `grace` to finish and
    /// releases the leases of those that did not.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let hard_stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut idle = self.settings.poll_interval;
        // Bulk rounds in flight, and when the backlog is looked at next.
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut next_backlog_check = Instant::now();
        tracing::info!(owner = %self.owner, concurrency = self.settings.concurrency, "worker started");
        while !shutdown.is_cancelled() {
            while let Some(done) = tasks.try_join_next() {
                log_panic(done);
            }
            if rounds.load(Ordering::SeqCst) < bulk::MAX_ROUNDS
                && Instant::now() >= next_backlog_check
            {
                next_backlog_check = Instant::now() + bulk::BACKLOG_CHECK;
                let jobs = self.claim_bulk().await;
                if !jobs.is_empty() {
                    rounds.fetch_add(1, Ordering::SeqCst);
                    let (worker, stop, rounds) = (self.clone(), hard_stop.clone(), rounds.clone());
                    tasks.spawn(async move {
                        worker.run_bulk(jobs, stop).await;
                        rounds.fetch_sub(1, Ordering::SeqCst);
                        worker.wake.notify_one();
                    });
                    continue;
                }
            }
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    Some(done) = tasks.join_next() => log_panic(done),
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            match self
                .store
                .claim(
                    &self.owner,
                    free.min(CLAIM_BATCH),
                    self.settings.lease,
                    Millis::now(),
                )
                .await
            {
                Ok(jobs) if !jobs.is_empty() => {
                    idle = self.settings.poll_interval;
                    for job in jobs {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            break;
                        };
                        let (worker, stop) = (self.clone(), hard_stop.clone());
                        tasks.spawn(async move {
                            worker.run_job(job, stop).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim jobs: state DB unavailable");
                    idle = (idle * 2).min(Duration::from_secs(5));
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        if !tasks.is_empty() {
            tracing::info!(in_flight = tasks.len(), grace = ?grace, "stopping: letting in-flight jobs finish");
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "grace period over: releasing the remaining leases"
            );
            hard_stop.cancel();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!("worker stopped");
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a job task panicked; its lease expires and the job runs again");
        }
    }
}
