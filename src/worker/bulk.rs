//! Bulk tag writes on Zendesk: when the ready backlog is more than the budget clears with single
//! writes within `zendesk.bulk_after`, the excess (jobs never tried) is claimed in one round, run
//! through the same steps as a single job up to the write (`pipeline.rs`), grouped by the exact
//! tags to add and remove, and written 100 tickets per `update_many` (`bulk_job.rs`). Each job is
//! then settled from its own ticket's result, with the audit row a single write would record; a
//! ticket that failed is retried on its own through the single path. Jobs whose update carries
//! fields or a note are written singly in the round. A job whose lease the round's heartbeat
//! finds gone (it expired and was claimed again) is left to its new holder: left out of the
//! `update_many` calls not yet sent, and never settled by the round.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::bulk_job::BulkEnd;
use super::pipeline::{Findings, Prepared};
use super::settle::Attempt;
use super::Worker;
use crate::clock::Millis;
use crate::domain::{JobId, Outcome, Source, Tag, TicketId};
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

/// The round's leases as its heartbeat knows them: the jobs it still renews (not settled yet)
/// and the tickets whose job's lease it found gone. A round holds one job per ticket.
struct Leases(Mutex<Book>);

#[derive(Default)]
struct Book {
    held: HashSet<JobId>,
    lost: HashSet<TicketId>,
}

impl Leases {
    fn new(jobs: &[LeasedJob]) -> Leases {
        let held = jobs.iter().map(|j| j.id).collect();
        Leases(Mutex::new(Book {
            held,
            ..Book::default()
        }))
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Nothing panics while holding it; a poisoned book is still right.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The jobs of `jobs` whose lease the round renews.
    fn held(&self, jobs: &[LeasedJob]) -> Vec<LeasedJob> {
        let book = self.book();
        jobs.iter()
            .filter(|j| book.held.contains(&j.id))
            .cloned()
            .collect()
    }

    /// After renewing `asked`: those still held that were not `renewed` are lost. Returns how
    /// many.
    fn renewed(&self, asked: &[LeasedJob], renewed: &[JobId]) -> usize {
        let renewed: HashSet<&JobId> = renewed.iter().collect();
        let mut book = self.book();
        let mut lost = 0;
        for job in asked {
            if !renewed.contains(&job.id) && book.held.remove(&job.id) {
                book.lost.insert(job.ticket_id);
                lost += 1;
            }
        }
        lost
    }

    fn is_lost(&self, ticket: TicketId) -> bool {
        self.book().lost.contains(&ticket)
    }

    /// Takes `job` out of the renewals to settle it; `false` when its lease is lost.
    fn take(&self, job: &LeasedJob) -> bool {
        self.book().held.remove(&job.id)
    }
}

impl Worker {
    /// The Zendesk jobs to write in bulk now, claimed: the ready backlog beyond what single
    /// writes clear within `zendesk.bulk_after`. Empty when the backlog is small.
    pub(super) async fn claim_bulk(&self) -> Vec<LeasedJob> {
        let Some(bulk) = self.helpdesks.get(Source::Zendesk).and_then(|h| h.bulk()) else {
            return Vec::new();
        };
        let now = Millis::now();
        // More than what a round takes beyond the single writes' share changes nothing.
        let up_to = bulk.single_write_capacity().saturating_add(ROUND_JOBS);
        let ready = match self.store.ready_jobs(Source::Zendesk, now, up_to).await {
            Ok(n) => n,
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
        let leases = Leases::new(&jobs);
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.settings.lease / 3).await;
                let held = leases.held(&jobs);
                match self
                    .store
                    .renew_leases(&held, self.settings.lease, Millis::now())
                    .await
                {
                    Ok(renewed) => match leases.renewed(&held, &renewed) {
                        0 => {}
                        lost => tracing::warn!(
                            lost,
                            held = renewed.len(),
                            "bulk round: leases expired and were claimed again; those jobs are left to their new holder"
                        ),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot renew the bulk round's leases"),
                }
            }
        };
        // The leases are renewed until the last job is settled; a lost one is not settled.
        let work = async {
            let settled = self.bulk_round(&jobs, &leases).await;
            let leases = &leases;
            stream::iter(settled)
                .for_each_concurrent(
                    self.settings.concurrency.max(1),
                    |(job, attempt)| async move {
                        if leases.take(&job) {
                            self.settle(&job, attempt).await;
                        }
                    },
                )
                .await;
        };
        tokio::select! {
            () = work => {}
            // (The heartbeat loops until the round is over.)
            () = heartbeat => {}
            _ = stop.cancelled() => {
                // The release's guard leaves alone a job settled already or lost.
                if let Err(e) = self.store.release_leases(&jobs, Millis::now()).await {
                    tracing::warn!(error = %e, "cannot release the bulk round's leases; they expire by themselves");
                }
            }
        }
    }

    /// Every job's attempt: decided before any write, written singly, or from its ticket's
    /// result in a bulk job.
    async fn bulk_round(&self, jobs: &[LeasedJob], leases: &Leases) -> Vec<(LeasedJob, Attempt)> {
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
            // (Not reached: a round is claimed only when the client writes in bulk.) Nothing
            // is dropped: each job goes back to the queue.
            for (job, found, _) in pending {
                let attempt = Attempt::Transient {
                    error: "this helpdesk client has no bulk writes".into(),
                    retry_after: None,
                    audit: found.record(Outcome::Failed, None),
                };
                settled.push((job, attempt));
            }
            return settled;
        };
        // The exact tags to add and remove → the jobs needing them, 100 per call.
        let mut groups: BTreeMap<(Vec<Tag>, Vec<Tag>), Vec<Pending>> = BTreeMap::new();
        for waiting in pending {
            if leases.is_lost(waiting.0.ticket_id) {
                continue;
            }
            let key = (
                sorted(&waiting.2.update.add),
                sorted(&waiting.2.update.remove),
            );
            groups.entry(key).or_default().push(waiting);
        }
        let mut calls = Vec::new();
        for ((add, remove), mut members) in groups {
            while !members.is_empty() {
                let chunk: Vec<Pending> = members
                    .drain(..members.len().min(MAX_BULK_TICKETS))
                    .collect();
                let (add, remove) = (add.clone(), remove.clone());
                calls.push(async move {
                    let tickets: Vec<TicketId> =
                        chunk.iter().map(|(j, _, _)| j.ticket_id).collect();
                    let ours = |t: TicketId| !leases.is_lost(t);
                    let end = self.bulk_job(bulk, &tickets, &add, &remove, &ours).await;
                    (chunk, end)
                });
            }
        }
        for (chunk, end) in futures_util::future::join_all(calls).await {
            for (job, mut found, p) in chunk.into_iter().filter(|w| !leases.is_lost(w.0.ticket_id))
            {
                let attempt = self.bulk_attempt(&mut found, job.ticket_id, p, &end);
                settled.push((job, attempt));
            }
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
        let transient = |error: String| HelpdeskError::Unavailable(error);
        let failure = match end {
            BulkEnd::Results(results) => match results.get(&ticket) {
                Some(Ok(())) => {
                    self.count_bulk_ticket("tagged");
                    return found.tagged(p.update);
                }
                Some(Err(f)) if f.is_not_found() => {
                    self.count_bulk_ticket("failed");
                    return found.finished(Outcome::Rejected, Some(format!("update_many: {f}")));
                }
                // Zendesk could not update this one ticket: retried on its own (single path).
                Some(Err(f)) => ("failed", transient(format!("update_many: {f}"))),
                None => (
                    "retried",
                    transient("update_many: no result for the ticket".into()),
                ),
            },
            BulkEnd::Over { state, message } => (
                "retried",
                transient(format!("update_many job {state:?}: {message}")),
            ),
            // The call itself: what the same error means for a single write (a pause defers,
            // a 429 keeps its wait, a 401/403 dead-letters, counted `failed`).
            BulkEnd::Error(err @ HelpdeskError::Rejected { .. }) => ("failed", err.clone()),
            BulkEnd::Error(err) => ("retried", err.clone()),
        };
        self.count_bulk_ticket(failure.0);
        Attempt::from_helpdesk_error(failure.1, found.record(Outcome::Failed, None))
    }

    /// `ltv_tagger_bulk_tickets_total{result}`.
    pub(super) fn count_bulk_ticket(&self, result: &str) {
        self.metrics.bulk_tickets.with_label_values(&[result]).inc();
    }
}

fn sorted(tags: &[Tag]) -> Vec<Tag> {
    let mut v = tags.to_vec();
    v.sort();
    v
}
