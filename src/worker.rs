//! The worker: claims due jobs under a lease, decides, writes tags, records the decision.
//!
//! One dispatcher loop claims as many jobs as there are free permits (`worker.concurrency`) and
//! runs each in its own task, which renews its lease while it works. Failures are classified:
//! transient ones go back to the queue with exponential backoff and jitter (or the helpdesk's
//! `Retry-After`), until `worker.retry_horizon` has passed, after which the job is dead-lettered;
//! final ones are recorded and not retried.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WorkerSettings;
use crate::domain::{CustomerEmail, Source, Tag};
use crate::helpdesk::{GorgiasClient, HelpdeskError, ZendeskClient};
use crate::metrics::Metrics;
use crate::orders::OrderDb;
use crate::policy::{CustomerFacts, Policy};
use crate::store::{ms, now_ms, AuditRecord, Final, Job, StateStore};

/// Jobs claimed per round trip at most.
const CLAIM_BATCH: usize = 32;

pub struct WorkerContext {
    pub store: StateStore,
    pub orders: OrderDb,
    pub policy: Policy,
    pub zendesk: Option<ZendeskClient>,
    pub gorgias: Option<GorgiasClient>,
    pub metrics: Metrics,
    pub settings: WorkerSettings,
    /// This process's name on the leases it holds.
    pub owner: String,
    pub wake: Arc<Notify>,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    /// Decided and done (tagged, already tagged, nothing to tag, unknown customer…).
    Finished(AuditRecord),
    /// Worth another try later.
    Transient {
        error: String,
        retry_after: Option<Duration>,
        audit: AuditRecord,
    },
    /// Will never succeed as is: dead-lettered so an operator can fix the cause and retry it.
    Fatal(AuditRecord),
}

/// Runs until `shutdown` is cancelled, then gives in-flight jobs `grace` to finish and releases
/// the leases of those that did not.
pub async fn run(ctx: Arc<WorkerContext>, shutdown: CancellationToken, grace: Duration) {
    let permits = Arc::new(Semaphore::new(ctx.settings.concurrency));
    let hard_stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut idle = ctx.settings.poll_interval;
    tracing::info!(owner = %ctx.owner, concurrency = ctx.settings.concurrency, "worker started");
    while !shutdown.is_cancelled() {
        while let Some(done) = tasks.try_join_next() {
            log_panic(done);
        }
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                Some(done) = tasks.join_next() => log_panic(done),
                _ = shutdown.cancelled() => {}
            }
            continue;
        }
        match ctx
            .store
            .claim(
                &ctx.owner,
                free.min(CLAIM_BATCH),
                ctx.settings.lease,
                now_ms(),
            )
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                idle = ctx.settings.poll_interval;
                for job in jobs {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        break;
                    };
                    let ctx = ctx.clone();
                    let stop = hard_stop.clone();
                    tasks.spawn(async move {
                        run_job(&ctx, job, stop).await;
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
            _ = ctx.wake.notified() => {}
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

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a job task panicked; its lease expires and the job runs again");
        }
    }
}

async fn run_job(ctx: &WorkerContext, job: Job, stop: CancellationToken) {
    let span = tracing::info_span!(
        "job",
        id = job.id,
        helpdesk = %job.source,
        ticket = %job.ticket_id,
        attempt = job.attempts
    );
    async {
        let heartbeat = async {
            let every = ctx.settings.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                match ctx.store.renew(job.id, &ctx.owner, ctx.settings.lease, now_ms()).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // The DB may come back before the lease runs out: keep trying.
                    Err(e) => tracing::warn!(error = %e, "cannot renew lease"),
                }
            }
        };
        // A job whose attempts never come back (a crash loop, a panic) is caught here: past
        // the horizon it is dead-lettered instead of being claimed again forever.
        // (Rescheduled attempts stay within the horizon; the margin lets a late claim still run.)
        let limit = ctx.settings.retry_horizon + ctx.settings.retry_max + ctx.settings.lease;
        if job.attempts > 1 && now_ms() - job.created_at > ms(limit) {
            let audit = AuditRecord {
                outcome: "dead".into(),
                detail: Some(format!(
                    "still not done after {} attempts past worker.retry_horizon",
                    job.attempts - 1
                )),
                ..AuditRecord::default()
            };
            settle(ctx, &job, Attempt::Fatal(audit)).await;
            return;
        }
        let attempt = tokio::select! {
            a = process(ctx, &job) => a,
            _ = heartbeat => {
                tracing::warn!("lease lost to another worker: abandoning this attempt");
                return;
            }
            _ = stop.cancelled() => {
                match ctx.store.release(job.id, &ctx.owner, now_ms()).await {
                    Ok(()) => tracing::info!("lease released for the next start"),
                    Err(e) => tracing::warn!(error = %e, "cannot release lease; it expires by itself"),
                }
                return;
            }
        };
        settle(ctx, &job, attempt).await;
    }
    .instrument(span)
    .await
}

async fn settle(ctx: &WorkerContext, job: &Job, attempt: Attempt) {
    let now = now_ms();
    let (end, audit) = match attempt {
        Attempt::Finished(audit) => (Final::Done, audit),
        Attempt::Fatal(audit) => (Final::Dead, audit),
        Attempt::Transient {
            error,
            retry_after,
            mut audit,
        } => {
            let delay = backoff(
                job.attempts,
                ctx.settings.retry_base,
                ctx.settings.retry_max,
            )
            .max(retry_after.unwrap_or_default());
            let run_at = now + ms(delay);
            if run_at - job.created_at <= ms(ctx.settings.retry_horizon) {
                ctx.metrics.jobs.with_label_values(&["retry"]).inc();
                tracing::warn!(error = %error, retry_in = ?delay, "attempt failed; will retry");
                if let Err(e) = ctx
                    .store
                    .retry_later(job.id, &ctx.owner, run_at, &error, now)
                    .await
                {
                    tracing::error!(error = %e, "cannot reschedule; the lease will expire and the job runs again");
                }
                return;
            }
            audit.outcome = "dead".into();
            audit.detail = Some(format!(
                "gave up after {} attempts over {}: {error}",
                job.attempts,
                humantime::format_duration(Duration::from_secs(
                    u64::try_from((now - job.created_at) / 1000).unwrap_or(0)
                ))
            ));
            (Final::Dead, audit)
        }
    };
    match ctx.store.finish(job, &ctx.owner, end, &audit, now).await {
        Ok(true) => {
            ctx.metrics.jobs.with_label_values(&[&audit.outcome]).inc();
            let detail = audit.detail.as_deref().unwrap_or("");
            match end {
                Final::Done => {
                    tracing::info!(outcome = %audit.outcome, tags = ?audit.tags_written, detail, "job done")
                }
                Final::Dead => {
                    tracing::error!(outcome = %audit.outcome, detail, "job dead-lettered: see `ltv-tagger jobs list --dead`")
                }
            }
        }
        Ok(false) => {
            tracing::warn!("lease lost before the job could be recorded; another worker has it")
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record the outcome; the lease will expire and the job runs again")
        }
    }
}

/// `base × 2^(attempt-1)`, capped at `max`, with equal jitter (half fixed, half random).
pub fn backoff(attempt: i64, base: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1u32 << exp.min(30)).min(max);
    let half = full / 2;
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=half.as_millis() as u64))
}

fn done(mut audit: AuditRecord, outcome: &str, detail: Option<String>) -> Attempt {
    audit.outcome = outcome.into();
    audit.detail = detail;
    Attempt::Finished(audit)
}

/// What a helpdesk error means for the job.
fn on_helpdesk_error(e: HelpdeskError, mut audit: AuditRecord) -> Attempt {
    match e {
        HelpdeskError::RateLimited { retry_after } => Attempt::Transient {
            error: e.to_string(),
            retry_after: Some(retry_after),
            audit,
        },
        HelpdeskError::Unavailable(msg) => Attempt::Transient {
            error: msg,
            retry_after: None,
            audit,
        },
        // Closed ticket (422) or gone (404): final, recorded with the helpdesk's reason.
        HelpdeskError::Rejected {
            status: 404 | 422, ..
        } => done(audit, "rejected", Some(e.to_string())),
        // 400/401/403…: a configuration problem; dead-letter so it can be retried once fixed.
        HelpdeskError::Rejected { .. } => {
            audit.outcome = "failed".into();
            audit.detail = Some(e.to_string());
            Attempt::Fatal(audit)
        }
    }
}

fn not_configured(source: Source, audit: AuditRecord) -> Attempt {
    let mut audit = audit;
    audit.outcome = "failed".into();
    audit.detail = Some(format!("{source} is not configured on this service"));
    Attempt::Fatal(audit)
}

async fn process(ctx: &WorkerContext, job: &Job) -> Attempt {
    let mut audit = AuditRecord::default();

    // 1. Who is the customer?
    let raw_email = match (&job.requester_email, &job.requester_id) {
        (Some(e), _) => e.clone(),
        (None, Some(id)) => {
            let fetched = match job.source {
                Source::Zendesk => match &ctx.zendesk {
                    Some(z) => z.user_email(id).await,
                    None => return not_configured(job.source, audit),
                },
                Source::Gorgias => match &ctx.gorgias {
                    Some(g) => g.customer_email(id).await,
                    None => return not_configured(job.source, audit),
                },
            };
            match fetched {
                Ok(Some(e)) => e,
                Ok(None) => {
                    return done(
                        audit,
                        "no_email",
                        Some(format!("requester {id} has no email address")),
                    )
                }
                Err(e) => return on_helpdesk_error(e, audit),
            }
        }
        (None, None) => {
            return done(
                audit,
                "no_email",
                Some("the event named no requester".into()),
            )
        }
    };
    let email = match CustomerEmail::parse(&raw_email) {
        Ok(e) => e,
        Err(e) => return done(audit, "no_email", Some(e)),
    };
    audit.email = Some(email.to_string());

    // 2. What is the customer worth?
    let stats = match ctx.orders.lookup(email.as_str()).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            // No row: LTV counts as 0 and nothing is tagged (whatever the lowest tier says).
            audit.ltv = Some("0".into());
            audit.orders = Some(0);
            audit.disputes = Some(0);
            return done(audit, "unknown_customer", None);
        }
        Err(e) => {
            return Attempt::Transient {
                error: format!("order DB: {e}"),
                retry_after: None,
                audit,
            }
        }
    };
    audit.ltv = Some(stats.ltv.to_string());
    audit.orders = Some(stats.orders);
    audit.disputes = Some(stats.disputes);

    // 3. Which tags? (pure)
    let tags = ctx.policy.decide(&CustomerFacts {
        ltv: stats.ltv,
        disputes: stats.disputes,
    });
    audit.tags_decided = tags.iter().map(Tag::to_string).collect();
    if tags.is_empty() {
        return done(audit, "no_tags", None);
    }
    let missing: Vec<Tag> = tags
        .into_iter()
        .filter(|t| !job.ticket_tags.iter().any(|have| have == t.as_str()))
        .collect();
    if missing.is_empty() {
        // The ticket already carries every decided tag: writing again would only re-fire triggers.
        return done(audit, "already_tagged", None);
    }

    // 4. Write them.
    let written = match job.source {
        Source::Zendesk => match &ctx.zendesk {
            Some(z) => z.add_tags(job.ticket_id, &missing).await,
            None => return not_configured(job.source, audit),
        },
        Source::Gorgias => match &ctx.gorgias {
            Some(g) => g.add_tags(job.ticket_id, &missing).await,
            None => return not_configured(job.source, audit),
        },
    };
    match written {
        Ok(()) => {
            audit.tags_written = missing.iter().map(Tag::to_string).collect();
            done(audit, "tagged", None)
        }
        Err(e) => on_helpdesk_error(e, audit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_jittered_and_capped() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(600);
        for _ in 0..100 {
            let d1 = backoff(1, base, max);
            assert!(
                d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(2),
                "{d1:?}"
            );
            let d4 = backoff(4, base, max);
            assert!(
                d4 >= Duration::from_secs(8) && d4 <= Duration::from_secs(16),
                "{d4:?}"
            );
            let d40 = backoff(40, base, max);
            assert!(d40 >= Duration::from_secs(300) && d40 <= max, "{d40:?}");
        }
    }
}
