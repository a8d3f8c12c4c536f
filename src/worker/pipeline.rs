//! One attempt at a job, step by step: resolve the requester's email, look the customer up in
//! the order DB, decide the tags (pure policy), write the missing ones to the helpdesk and remove
//! the policy's own stale ones (`policy.remove_stale_tags`).

use super::settle::Attempt;
use super::Worker;
use crate::domain::{CustomerEmail, CustomerStats, Outcome, Requester, Tag};
use crate::helpdesk::{Helpdesk, TicketUpdate};
use crate::policy::Mode;
use crate::state::{AuditRecord, Job};

/// What an attempt found so far, for the audit row whatever happens next.
#[derive(Debug, Default)]
pub(super) struct Findings {
    email: Option<CustomerEmail>,
    pub(super) stats: Option<CustomerStats>,
    pub(super) decided: Vec<Tag>,
    written: Vec<Tag>,
    removed: Vec<Tag>,
}

impl Findings {
    pub(super) fn record(&self, outcome: Outcome, detail: Option<String>) -> AuditRecord {
        let names = |tags: &[Tag]| tags.iter().map(Tag::to_string).collect();
        AuditRecord {
            email: self.email.as_ref().map(CustomerEmail::to_string),
            ltv: self.stats.as_ref().map(|s| s.ltv.to_string()),
            orders: self.stats.as_ref().map(|s| s.orders),
            disputes: self.stats.as_ref().map(|s| s.disputes),
            tags_decided: names(&self.decided),
            tags_written: names(&self.written),
            outcome,
            detail,
        }
    }

    pub(super) fn finished(&self, outcome: Outcome, detail: Option<String>) -> Attempt {
        Attempt::Finished(self.record(outcome, detail))
    }

    /// `update` reached the ticket (one call or in bulk): the same `tagged` row either way.
    pub(super) fn tagged(&mut self, update: TicketUpdate) -> Attempt {
        self.written = update.add;
        self.removed = update.remove;
        let detail = (!self.removed.is_empty()).then(|| {
            let names: Vec<String> = self.removed.iter().map(Tag::to_string).collect();
            format!("removed the policy's stale tags: {}", names.join(", "))
        });
        self.finished(Outcome::Tagged, detail)
    }
}

/// What the steps before the write decided: the update, and whether it carries the
/// once-per-ticket note.
pub(super) struct Prepared {
    pub(super) update: TicketUpdate,
    with_note: bool,
}

impl Prepared {
    /// Tags to add and remove, nothing else: a bulk write can carry it.
    pub(super) fn tags_only(&self) -> bool {
        self.update.tags_only()
    }
}

/// A step that ends the attempt early.
pub(super) type Stop = Box<Attempt>;

impl Worker {
    /// Runs the steps of one attempt; each either hands its result to the next or ends it.
    pub(super) async fn process(&self, job: &Job) -> Attempt {
        let mut found = Findings::default();
        self.steps(job, &mut found)
            .await
            .unwrap_or_else(|stop| *stop)
    }

    async fn steps(&self, job: &Job, found: &mut Findings) -> Result<Attempt, Stop> {
        let helpdesk = self.helpdesk_for(job, found)?;
        let prepared = self.prepare(helpdesk, job, found).await?;
        Ok(self.write_prepared(helpdesk, job, prepared, found).await)
    }

    pub(super) fn helpdesk_for(&self, job: &Job, found: &Findings) -> Result<&dyn Helpdesk, Stop> {
        self.helpdesks.get(job.source).ok_or_else(|| {
            Box::new(Attempt::Fatal(found.record(
                Outcome::Failed,
                Some(format!("{} is not configured on this service", job.source)),
            )))
        })
    }

    /// Steps 1–4 and the fields and note: everything before the write. `Err` ends the attempt
    /// (nothing to write, shadow mode, a failure).
    pub(super) async fn prepare(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        found: &mut Findings,
    ) -> Result<Prepared, Stop> {
        let email = self.resolve_requester(helpdesk, job, found).await?;
        found.email = Some(email.clone());
        let Some(stats) = self.look_up(&email, found).await? else {
            // No row: LTV counts as 0 and nothing is tagged (whatever the lowest tier says).
            found.stats = Some(CustomerStats::default());
            return Err(Box::new(found.finished(Outcome::UnknownCustomer, None)));
        };
        found.stats = Some(stats.clone());
        let have = self.ticket_tags(helpdesk, job, found).await?;
        let mut update = match self.decide(job, &have, &stats, found) {
            Ok(update) => update,
            Err(outcome) => return Err(Box::new(found.finished(outcome, None))),
        };
        if self.policy.load().mode() == Mode::Shadow {
            // Decided and recorded; nothing (tags, fields, note) reaches the helpdesk.
            return Err(Box::new(self.shadow(update.add, found)));
        }
        let with_note = self
            .annotate(helpdesk, job, &email, &stats, &mut update)
            .await
            .map_err(|e| {
                Box::new(Attempt::Transient {
                    error: format!("state DB: {e}"),
                    retry_after: None,
                    audit: found.record(Outcome::Failed, None),
                })
            })?;
        Ok(Prepared { update, with_note })
    }

    /// Step 5 for one ticket: the write, and the note remembered once it was written.
    pub(super) async fn write_prepared(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        prepared: Prepared,
        found: &mut Findings,
    ) -> Attempt {
        let attempt = self.write(helpdesk, job, prepared.update, found).await;
        // Only a write that happened carried the note (a re-read after a 409 may find the tags
        // already right and write nothing).
        if prepared.with_note
            && matches!(&attempt, Attempt::Finished(a) if a.outcome == Outcome::Tagged)
        {
            self.remember_note(job).await;
        }
        attempt
    }

    /// 1. Who is the customer? The event's email, or the helpdesk's answer for its requester id.
    async fn resolve_requester(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        found: &Findings,
    ) -> Result<CustomerEmail, Stop> {
        let raw = match &job.requester {
            Some(Requester::Email(email)) => return Ok(email.clone()),
            Some(Requester::Id(id)) => match helpdesk.requester_email(id).await {
                Ok(Some(email)) => email,
                Ok(None) => {
                    return Err(Box::new(found.finished(
                        Outcome::NoEmail,
                        Some(format!("requester {id} has no email address")),
                    )))
                }
                Err(e) => {
                    return Err(Box::new(Attempt::from_helpdesk_error(
                        e,
                        found.record(Outcome::Failed, None),
                    )))
                }
            },
            None => {
                return Err(Box::new(found.finished(
                    Outcome::NoEmail,
                    Some("the event named no requester".into()),
                )))
            }
        };
        CustomerEmail::parse(&raw).map_err(|e| Box::new(found.finished(Outcome::NoEmail, Some(e))))
    }

    /// 2. What is the customer worth? `None`: the order DB does not know them.
    async fn look_up(
        &self,
        email: &CustomerEmail,
        found: &Findings,
    ) -> Result<Option<CustomerStats>, Stop> {
        self.orders.lookup(email.as_str()).await.map_err(|e| {
            Box::new(Attempt::Transient {
                error: format!("order DB: {e}"),
                retry_after: None,
                audit: found.record(Outcome::Failed, None),
            })
        })
    }

    /// 3. The tags the ticket carries: the event's, or the helpdesk's own answer when the event
    ///    carried none (Gorgias events carry no tags unless the admin adds them to the body).
    async fn ticket_tags(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        found: &Findings,
    ) -> Result<Vec<String>, Stop> {
        if !job.ticket_tags.is_empty() {
            return Ok(job.ticket_tags.clone());
        }
        match helpdesk.current_tags(job.ticket_id).await {
            Ok(tags) => Ok(tags.unwrap_or_default()),
            Err(e) => Err(Box::new(Attempt::from_helpdesk_error(
                e,
                found.record(Outcome::Failed, None),
            ))),
        }
    }

    /// 4. Which tags (pure), which of them the ticket still lacks, and which of the policy's own
    ///    tags it carries that the decision no longer gives (never a tag outside the policy).
    ///    `Err` is the outcome when there is nothing to write.
    pub(super) fn decide(
        &self,
        job: &Job,
        have: &[String],
        stats: &CustomerStats,
        found: &mut Findings,
    ) -> Result<TicketUpdate, Outcome> {
        let policy = self.policy.load();
        let tags = policy.decide(stats);
        found.decided = tags.clone();
        let holds = |t: &Tag| have.iter().any(|h| t.is_on(h, job.source));
        let add: Vec<Tag> = tags.iter().filter(|t| !holds(t)).cloned().collect();
        let remove: Vec<Tag> = if policy.remove_stale_tags() {
            let all = policy.all_tags();
            all.into_iter()
                .filter(|t| holds(t) && !tags.contains(t))
                .collect()
        } else {
            Vec::new()
        };
        if add.is_empty() && remove.is_empty() {
            // The ticket is already in the decided state: writing again would only re-fire
            // triggers.
            return Err(if tags.is_empty() {
                Outcome::NoTags
            } else {
                Outcome::AlreadyTagged
            });
        }
        Ok(TicketUpdate {
            add,
            remove,
            ..TicketUpdate::default()
        })
    }

    /// 5. Write the missing tags and remove the stale ones (a safe update when the event gave the
    ///    ticket's stamp: `safe_write.rs`).
    async fn write(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        update: TicketUpdate,
        found: &mut Findings,
    ) -> Attempt {
        match self.write_safely(helpdesk, job, update, found).await {
            Ok(update) => found.tagged(update),
            Err(stop) => *stop,
        }
    }
}
