//! Bulk tag writes on Zendesk: when the ready backlog is more than the budget clears with single
//! writes within `zendesk.bulk_after`, the excess (jobs never tried) is claimed in one round, run
//! through the same steps as a single job up to the write (`pipeline.rs`), grouped by the exact
//! tags to add and remove, and written 100 tickets per `update_many` (`bulk_job.rs`). Each job is
//! then settled from its own ticket's result, with the audit row a single write would record; a
//! ticket that failed is retried on its own through the single path. Jobs whose update carries
//! fields or a note are written singly in the round.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::bulk_job::BulkEnd;
use super::pipeline::{Findings, Prepared};
use super::settle::Attempt;
use super::Worker;
use crate::clock::Millis;
use crate::domain::{Outcome, Source, Tag, TicketId};
use crate::helpdesk::{HelpdeskError, MAX_BULK_JOBS, MAX_BULK_TICKETS};
use crate::state::LeasedJob;

/// Jobs claimed for one round at most: ten `update_many` calls.
const ROUND_JOBS: usize = 10 * MAX_BULK_TICKETS;
/// Rounds of one process at once; with [`ROUND_JOBS`] they fill the account's 30 job slots.
pub(super) const MAX_ROUNDS: usize = MAX_BULK_JOBS / 10;
/// The dispatcher looks at the backlog this often at most.
pub(super) const BACKLOG_CHECK: Duration = Duration::from_secs(1);

/// A job of the round whose update waits for its group's bulk job.
type Pending = (LeasedJob, Findings, Prepared);

impl Worker {
    /// The Zendesk jobs to write in bulk now, claimed: the ready backlog beyond what single
    /// writes clear within `zendesk.bulk_after`. Empty when the backlog is small.
    pub(super) async fn claim_bulk(&self) -> Vec<LeasedJob> {
        let Some(bulk) = self.helpdesks.get(Source::Zendesk).and_then(|h| h.bulk()) else {
            return Vec::new();
        };
        let now = Millis::now();
        let ready = match self.store.ready_jobs(Source::Zendesk, now).await {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the ready backlog");
                return Vec::new();
            }
        };
        let excess = ready.saturating_sub(bulk.single_write_capacity());
        if excess == 0 {
            return Vec::new();
        }
        let lease = self.settings.lease;
        let claimed = self
            .store
            .claim_fresh(
                &self.owner,
                Source::Zendesk,
                excess.min(ROUND_JOBS),
                lease,
                now,
            )
            .await;
        claimed.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot claim jobs for a bulk write");
            Vec::new()
        })
    }

    /// One round: prepare, write in bulk, settle; leases renewed meanwhile, released on a hard
    /// stop.
    pub(super) async fn run_bulk(&self, jobs: Vec<LeasedJob>, stop: CancellationToken) {
        tracing::info!(
            jobs = jobs.len(),
            "ready backlog over zendesk.bulk_after: writing in bulk"
        );
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.settings.lease / 3).await;
                if let Err(e) = self
                    .store
                    .renew_leases(&jobs, self.settings.lease, Millis::now())
                    .await
                {
                    tracing::warn!(error = %e, "cannot renew the bulk round's leases");
                }
            }
        };
        // The leases are renewed until the last job is settled.
        let work = async {
            let settled = self.bulk_round(&jobs).await;
            stream::iter(settled)
                .for_each_concurrent(
                    self.settings.concurrency.max(1),
                    |(job, attempt)| async move {
                        self.settle(&job, attempt).await;
                    },
                )
                .await;
        };
        tokio::select! {
            () = work => {}
            // (The heartbeat loops until the round is over.)
            () = heartbeat => {}
            _ = stop.cancelled() => {
                // A job already settled is not ours any more: its release changes nothing.
                for job in &jobs {
                    if let Err(e) = job.release(Millis::now()).await {
                        tracing::warn!(error = %e, "cannot release lease; it expires by itself");
                    }
                }
            }
        }
    }

    /// Every job's attempt: decided before any write, written singly, or from its ticket's
    /// result in a bulk job.
    async fn bulk_round(&self, jobs: &[LeasedJob]) -> Vec<(LeasedJob, Attempt)> {
        let prepared: Vec<Result<(LeasedJob, Attempt), Pending>> =
            stream::iter(jobs.iter().cloned())
                .map(|job| self.prepare_for_bulk(job))
                .buffer_unordered(self.settings.concurrency.max(1))
                .collect()
                .await;
        let (mut settled, mut pending) = (Vec::new(), Vec::new());
        for p in prepared {
            match p {
                Ok(done) => settled.push(done),
                Err(waiting) => pending.push(waiting),
            }
        }
        let Some(bulk) = self.helpdesks.get(Source::Zendesk).and_then(|h| h.bulk()) else {
            return settled;
        };
        // The exact tags to add and remove → the jobs needing them, 100 per call.
        let mut groups: BTreeMap<(Vec<Tag>, Vec<Tag>), Vec<usize>> = BTreeMap::new();
        for (i, (_, _, p)) in pending.iter().enumerate() {
            let key = (sorted(&p.update.add), sorted(&p.update.remove));
            groups.entry(key).or_default().push(i);
        }
        let mut calls = Vec::new();
        for ((add, remove), members) in &groups {
            for chunk in members.chunks(MAX_BULK_TICKETS) {
                let tickets: Vec<TicketId> =
                    chunk.iter().map(|&i| pending[i].0.ticket_id).collect();
                calls
                    .push(async move { (chunk, self.bulk_job(bulk, &tickets, add, remove).await) });
            }
        }
        let ends = futures_util::future::join_all(calls).await;
        let mut end_of = vec![None; pending.len()];
        for (k, (chunk, _)) in ends.iter().enumerate() {
            for &i in *chunk {
                end_of[i] = Some(k);
            }
        }
        for ((job, mut found, p), end) in pending.into_iter().zip(end_of) {
            let attempt = match end {
                Some(k) => self.bulk_attempt(&mut found, job.ticket_id, p, &ends[k].1),
                None => Attempt::Transient {
                    error: "bulk write left unsent".into(),
                    retry_after: None,
                    audit: found.record(Outcome::Failed, None),
                },
            };
            settled.push((job, attempt));
        }
        settled
    }

    /// The steps up to the write: `Err` when the update waits for a bulk job (tags only). An
    /// update with fields or a note is written singly here.
    async fn prepare_for_bulk(&self, job: LeasedJob) -> Result<(LeasedJob, Attempt), Pending> {
        let mut found = Findings::default();
        let helpdesk = match self.helpdesk_for(&job, &found) {
            Ok(h) => h,
            Err(stop) => return Ok((job, *stop)),
        };
        let attempt = match self.prepare(helpdesk, &job, &mut found).await {
            Err(stop) => *stop,
            Ok(p) if p.tags_only() => return Err((job, found, p)),
            Ok(p) => self.write_prepared(helpdesk, &job, p, &mut found).await,
        };
        Ok((job, attempt))
    }

    /// The attempt of one job from its ticket's result in the bulk job's end: the same `tagged`
    /// row as a single write; a gone ticket `rejected`; any other failure retried on its own.
    fn bulk_attempt(
        &self,
        found: &mut Findings,
        ticket: TicketId,
        p: Prepared,
        end: &BulkEnd,
    ) -> Attempt {
        let label = |r: &str| self.metrics.bulk_tickets.with_label_values(&[r]).inc();
        let retry = |found: &Findings, error: String| {
            label("retried");
            Attempt::Transient {
                error,
                retry_after: None,
                audit: found.record(Outcome::Failed, None),
            }
        };
        match end {
            BulkEnd::Results(results) => match results.get(&ticket) {
                Some(Ok(())) => {
                    label("tagged");
                    found.tagged(p.update)
                }
                Some(Err(f)) if f.is_not_found() => {
                    label("failed");
                    found.finished(Outcome::Rejected, Some(format!("update_many: {f}")))
                }
                Some(Err(f)) => {
                    label("failed");
                    Attempt::Transient {
                        error: format!("update_many: {f}"),
                        retry_after: None,
                        audit: found.record(Outcome::Failed, None),
                    }
                }
                None => retry(found, "update_many: no result for the ticket".into()),
            },
            BulkEnd::Over { state, message } => {
                retry(found, format!("update_many job {state:?}: {message}"))
            }
            // Not sent: the account is paused; back to the queue without counting.
            BulkEnd::Error(HelpdeskError::Paused { retry_after }) => Attempt::Deferred {
                retry_after: *retry_after,
                audit: found.record(Outcome::Failed, None),
            },
            BulkEnd::Error(err) => retry(found, format!("update_many: {err}")),
        }
    }
}

fn sorted(tags: &[Tag]) -> Vec<Tag> {
    let mut v = tags.to_vec();
    v.sort();
    v
}
