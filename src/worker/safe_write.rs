//! The write as a Zendesk safe update: stamped with the ticket's `updated_at` from the event; on
//! 409 (the ticket changed meanwhile) re-read it, decide again on its fresh tags and retry with
//! the fresh stamp, a bounded number of times. A closed ticket (422) whose update is tags only is
//! tagged through `update_many` where the helpdesk has it (`bulk_job.rs`).

use super::pipeline::{Findings, Stop};
use super::settle::Attempt;
use super::Worker;
use crate::domain::Outcome;
use crate::helpdesk::{Helpdesk, HelpdeskError, TicketUpdate};
use crate::state::Job;

/// Writes per attempt when each meets a concurrent change; then the attempt is transient (the
/// job is retried with backoff).
pub(super) const SAFE_WRITE_TRIES: usize = 3;

impl Worker {
    /// Carries out `update` (stamped with the job's `ticket_updated_at`); `Ok` is what was
    /// finally written. A 409 on a stamped write: re-read, decide again, retry.
    pub(super) async fn write_safely(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        mut update: TicketUpdate,
        found: &mut Findings,
    ) -> Result<TicketUpdate, Stop> {
        update.stamp = job.ticket_updated_at.clone();
        let failed = |e: HelpdeskError, found: &Findings| {
            Box::new(Attempt::from_helpdesk_error(
                e,
                found.record(Outcome::Failed, None),
            ))
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let conflict = match helpdesk.write(job.ticket_id, &update).await {
                Ok(()) => return Ok(update),
                Err(HelpdeskError::Conflict(msg)) if update.stamp.is_some() => msg,
                Err(e @ HelpdeskError::Rejected { status: 422, .. }) => {
                    let Some(bulk) = helpdesk.bulk().filter(|_| update.tags_only()) else {
                        return Err(failed(e, found));
                    };
                    return match self.write_closed(bulk, job.ticket_id, &update).await {
                        Ok(()) => Ok(update),
                        Err(e) => Err(failed(e, found)),
                    };
                }
                Err(e) => return Err(failed(e, found)),
            };
            if tries >= SAFE_WRITE_TRIES {
                return Err(failed(
                    HelpdeskError::Conflict(format!(
                        "{conflict} (the ticket changed under {tries} safe updates in a row)"
                    )),
                    found,
                ));
            }
            let fresh = match helpdesk.fresh_ticket(job.ticket_id).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => return Err(failed(HelpdeskError::Conflict(conflict), found)),
                Err(e) => return Err(failed(e, found)),
            };
            let stats = found.stats.clone().unwrap_or_default();
            match self.decide(job, &fresh.tags, &stats, found) {
                Ok(again) => {
                    update.add = again.add;
                    update.remove = again.remove;
                    update.stamp = fresh.updated_at;
                }
                // The concurrent change left the ticket in the decided state: nothing to write.
                Err(outcome) => {
                    return Err(Box::new(found.finished(
                        outcome,
                        Some("the ticket changed during the write (409); re-read, nothing left to write".into()),
                    )))
                }
            }
        }
    }
}
