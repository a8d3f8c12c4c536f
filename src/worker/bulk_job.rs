//! One bulk job from start to end: `update_many` for up to 100 tickets (waiting for a job slot,
//! and through 429 `TooManyJobs` or a pause, without giving up), then polls of its status, paced
//! under the account's budget (a poll that meets 429/5xx is tried again later), until it is over.
//! Also the closed-ticket path of a single write: one ticket through `update_many`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{backoff, Worker};
use crate::domain::{Tag, TicketId};
use crate::helpdesk::{BulkState, BulkWrites, HelpdeskError, TicketFailure, TicketUpdate};

/// The first poll comes this long after the job was queued; later polls every [`POLL_EVERY`].
const FIRST_POLL: Duration = Duration::from_millis(500);
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between two tries of a call that met 429/5xx.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A job (queueing included) that is not over after this is given up: its tickets are retried.
const JOB_DEADLINE: Duration = Duration::from_secs(600);

/// How a bulk job ended.
#[derive(Debug)]
pub(super) enum BulkEnd {
    /// Completed: each ticket's own result (a ticket missing from them was not updated).
    Results(HashMap<TicketId, Result<(), TicketFailure>>),
    /// `failed` or `killed`: nothing can be assumed of any ticket.
    Over { state: BulkState, message: String },
    /// The job could not be queued or followed to its end.
    Error(HelpdeskError),
}

/// A call's error as the end of the whole bulk job. A 404 or 422 of the call itself (a job status
/// Zendesk no longer keeps, a refused `update_many`) says nothing of any one ticket, unlike the
/// same answer to a single write (a ticket gone or closed): its tickets are retried on their own.
fn call_failed(call: &str, e: HelpdeskError) -> BulkEnd {
    BulkEnd::Error(match e {
        HelpdeskError::Rejected {
            status: 404 | 422, ..
        } => HelpdeskError::Unavailable(format!("{call}: {e}")),
        e => e,
    })
}

/// A call worth trying again later, and after how long.
fn wait_for(e: &HelpdeskError, tries: u32) -> Option<Duration> {
    let backoff = backoff(i64::from(tries) + 1, Duration::from_millis(500), MAX_WAIT);
    match e {
        HelpdeskError::RateLimited { retry_after } | HelpdeskError::Paused { retry_after } => {
            Some((*retry_after).clamp(Duration::from_millis(100), MAX_WAIT))
        }
        HelpdeskError::Unavailable(_) | HelpdeskError::Conflict(_) => Some(backoff),
        HelpdeskError::Rejected { .. } => None,
    }
}

impl Worker {
    /// Queues `add`/`remove` on `tickets` and follows the job to its end. Each try of the call
    /// leaves out the tickets `ours` no longer owns (their job's lease is gone); none left: no
    /// call, and no results.
    pub(super) async fn bulk_job(
        &self,
        bulk: &dyn BulkWrites,
        tickets: &[TicketId],
        add: &[Tag],
        remove: &[Tag],
        ours: &(dyn Fn(TicketId) -> bool + Sync),
    ) -> BulkEnd {
        let deadline = Instant::now() + JOB_DEADLINE;
        let count = |call: &str, r: Result<(), &HelpdeskError>| {
            let status = match r {
                Ok(()) => "200".to_string(),
                Err(HelpdeskError::RateLimited { .. }) => "429".into(),
                Err(HelpdeskError::Rejected { status, .. }) => status.to_string(),
                Err(HelpdeskError::Paused { .. }) => return,
                Err(_) => "error".into(),
            };
            self.metrics
                .bulk_calls
                .with_label_values(&[call, &status])
                .inc();
        };
        let mut tries = 0;
        let (job, sent) = loop {
            let sent: Vec<TicketId> = tickets.iter().copied().filter(|&t| ours(t)).collect();
            if sent.is_empty() {
                return BulkEnd::Results(HashMap::new());
            }
            let r = bulk.update_many(&sent, add, remove).await;
            count("update_many", r.as_ref().map(|_| ()));
            match r {
                Ok(job) => break (job, sent),
                Err(e) => match wait_for(&e, tries).filter(|_| Instant::now() < deadline) {
                    // 429 (the rate limit, or Zendesk's 30 queued jobs) or a pause: wait, keep
                    // the tickets.
                    Some(wait) if !matches!(e, HelpdeskError::Unavailable(_)) || tries < 3 => {
                        tracing::info!(error = %e, wait = ?wait, "update_many: trying again later");
                        tries += 1;
                        tokio::time::sleep(wait).await;
                    }
                    _ => return call_failed("update_many", e),
                },
            }
        };
        tracing::debug!(job = %job.id, tickets = sent.len(), "update_many queued");
        tokio::time::sleep(FIRST_POLL).await;
        let mut tries = 0;
        loop {
            let r = bulk.job_status(&job).await;
            count("job_status", r.as_ref().map(|_| ()));
            let wait = match r {
                Ok(status) if status.state == BulkState::Completed => {
                    return BulkEnd::Results(status.results.into_iter().collect())
                }
                Ok(status) if status.state.is_over() => {
                    return BulkEnd::Over {
                        state: status.state,
                        message: status.message.unwrap_or_default(),
                    }
                }
                Ok(_) => {
                    tries = 0;
                    POLL_EVERY
                }
                Err(e) => match wait_for(&e, tries) {
                    Some(wait) => {
                        tries += 1;
                        tracing::info!(error = %e, wait = ?wait, "job status poll: trying again later");
                        wait.max(POLL_EVERY)
                    }
                    None => return call_failed("job status", e),
                },
            };
            if Instant::now() + wait > deadline {
                return BulkEnd::Error(HelpdeskError::Unavailable(format!(
                    "update_many job {} not over after {}s",
                    job.id,
                    JOB_DEADLINE.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// A single write the tags endpoint refused as a closed ticket (422): the tags through
    /// `update_many`, which can tag closed tickets. `Err` is what the ticket's result says.
    pub(super) async fn write_closed(
        &self,
        bulk: &dyn BulkWrites,
        ticket: TicketId,
        update: &TicketUpdate,
    ) -> Result<(), HelpdeskError> {
        let end = self
            .bulk_job(bulk, &[ticket], &update.add, &update.remove, &|_| true)
            .await;
        let result = match end {
            BulkEnd::Results(mut results) => results.remove(&ticket),
            BulkEnd::Over { state, message } => {
                return Err(HelpdeskError::Unavailable(format!(
                    "update_many job {state:?}: {message}"
                )))
            }
            BulkEnd::Error(e) => return Err(e),
        };
        let label = |r: &str| self.count_bulk_ticket(r);
        match result {
            Some(Ok(())) => {
                label("tagged");
                Ok(())
            }
            Some(Err(f)) => {
                label("failed");
                Err(HelpdeskError::Rejected {
                    status: if f.is_not_found() { 404 } else { 422 },
                    reason: format!("closed ticket, update_many: {f}"),
                })
            }
            None => {
                label("retried");
                Err(HelpdeskError::Unavailable(
                    "update_many: no result for the ticket".into(),
                ))
            }
        }
    }
}
