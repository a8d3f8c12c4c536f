//! Settling an attempt: finish it with its audit row, retry it later with backoff (or the
//! helpdesk's `Retry-After`), or dead-letter it once `worker.retry_horizon` has passed.

use std::time::Duration;

use rand::Rng;

use super::Worker;
use crate::clock::Millis;
use crate::domain::Outcome;
use crate::helpdesk::HelpdeskError;
use crate::state::{AuditRecord, Final, LeasedJob};

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
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
    /// Not attempted: the helpdesk account is paused. Back to the queue until the pause ends,
    /// the attempt not counted.
    Deferred {
        retry_after: Duration,
        audit: AuditRecord,
    },
}

impl Attempt {
    /// What a helpdesk error means for the job; `audit` holds what was found so far.
    pub fn from_helpdesk_error(e: HelpdeskError, mut audit: AuditRecord) -> Attempt {
        match e {
            HelpdeskError::Paused { retry_after } => Attempt::Deferred { retry_after, audit },
            HelpdeskError::RateLimited { retry_after } => Attempt::Transient {
                error: e.to_string(),
                retry_after: Some(retry_after),
                audit,
            },
            HelpdeskError::Unavailable(msg) | HelpdeskError::Conflict(msg) => Attempt::Transient {
                error: msg,
                retry_after: None,
                audit,
            },
            // Closed ticket (422) or gone (404): final, recorded with the helpdesk's reason.
            HelpdeskError::Rejected {
                status: 404 | 422, ..
            } => {
                audit.outcome = Outcome::Rejected;
                audit.detail = Some(e.to_string());
                Attempt::Finished(audit)
            }
            // 400/401/403…: a configuration problem; dead-letter so it can be retried once fixed.
            HelpdeskError::Rejected { .. } => {
                audit.outcome = Outcome::Failed;
                audit.detail = Some(e.to_string());
                Attempt::Fatal(audit)
            }
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

impl Worker {
    /// Records how the attempt ended; returns the outcome recorded, `None` when the job went
    /// back to the queue (or its lease was lost).
    pub(super) async fn settle(&self, job: &LeasedJob, attempt: Attempt) -> Option<Outcome> {
        let now = Millis::now();
        let settings = &self.settings;
        // A deferred job goes the way of a retry, at the pause's end and without counting.
        let (attempt, deferred) = match attempt {
            Attempt::Deferred { retry_after, audit } => (
                Attempt::Transient {
                    error: HelpdeskError::Paused { retry_after }.to_string(),
                    retry_after: Some(retry_after),
                    audit,
                },
                true,
            ),
            other => (other, false),
        };
        let (end, audit) = match attempt {
            // (`Deferred` was turned into `Transient` above.)
            Attempt::Finished(audit) | Attempt::Deferred { audit, .. } => (Final::Done, audit),
            Attempt::Fatal(audit) => (Final::Dead, audit),
            Attempt::Transient {
                error,
                retry_after,
                mut audit,
            } => {
                let delay = match (deferred, retry_after) {
                    (true, Some(pause)) => pause,
                    _ => backoff(job.attempts, settings.retry_base, settings.retry_max)
                        .max(retry_after.unwrap_or_default()),
                };
                let run_at = now + delay;
                if run_at.since(job.created_at) <= settings.retry_horizon {
                    self.metrics.jobs.with_label_values(&["retry"]).inc();
                    let requeued = if deferred {
                        tracing::info!(wait = ?delay, "helpdesk account paused: job waits in the queue");
                        job.defer(run_at, now).await
                    } else {
                        tracing::warn!(error = %error, retry_in = ?delay, "attempt failed; will retry");
                        job.retry(run_at, &error, now).await
                    };
                    if let Err(e) = requeued {
                        tracing::error!(error = %e, "cannot reschedule; the lease will expire and the job runs again");
                    }
                    return None;
                }
                audit.outcome = Outcome::Dead;
                audit.detail = Some(format!(
                    "gave up after {} attempts over {}: {error}",
                    job.attempts,
                    humantime::format_duration(Duration::from_secs(
                        now.since(job.created_at).as_secs()
                    ))
                ));
                (Final::Dead, audit)
            }
        };
        match job.finish(end, &audit, now).await {
            Ok(true) => {
                self.metrics
                    .jobs
                    .with_label_values(&[audit.outcome.as_str()])
                    .inc();
                let detail = audit.detail.as_deref().unwrap_or("");
                match end {
                    Final::Done => {
                        tracing::info!(outcome = %audit.outcome, tags = ?audit.tags_written, detail, "job done")
                    }
                    Final::Dead => {
                        tracing::error!(outcome = %audit.outcome, detail, "job dead-lettered: see `ltv-tagger jobs list --dead`")
                    }
                }
                Some(audit.outcome)
            }
            Ok(false) => {
                tracing::warn!(
                    "lease lost before the job could be recorded; another worker has it"
                );
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the outcome; the lease will expire and the job runs again");
                None
            }
        }
    }

    /// Past the horizon plus the slack a late claim needs: a crash-looping job (a panic, a kill
    /// mid-attempt) whose attempts never settle.
    pub(super) fn past_horizon(&self, job: &LeasedJob, now: Millis) -> bool {
        let s = &self.settings;
        let limit = s.retry_horizon + s.retry_max + s.lease;
        job.attempts > 1 && now.since(job.created_at) > limit
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
