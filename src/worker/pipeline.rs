//! One attempt at a job, step by step: resolve the requester's email, look the customer up in
//! the order DB, decide the tags (pure policy), write the missing ones to the helpdesk.

use super::settle::Attempt;
use super::Worker;
use crate::domain::{CustomerEmail, CustomerStats, Outcome, Requester, Tag};
use crate::helpdesk::Helpdesk;
use crate::policy::Mode;
use crate::state::{AuditRecord, Job};

/// What an attempt found so far, for the audit row whatever happens next.
#[derive(Debug, Default)]
pub(super) struct Findings {
    email: Option<CustomerEmail>,
    stats: Option<CustomerStats>,
    pub(super) decided: Vec<Tag>,
    written: Vec<Tag>,
}

impl Findings {
    fn record(&self, outcome: Outcome, detail: Option<String>) -> AuditRecord {
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
}

/// A step that ends the attempt early.
type Stop = Box<Attempt>;

impl Worker {
    /// Runs the steps of one attempt; each either hands its result to the next or ends it.
    pub(super) async fn process(&self, job: &Job) -> Attempt {
        let mut found = Findings::default();
        self.steps(job, &mut found)
            .await
            .unwrap_or_else(|stop| *stop)
    }

    async fn steps(&self, job: &Job, found: &mut Findings) -> Result<Attempt, Stop> {
        let Some(helpdesk) = self.helpdesks.get(job.source) else {
            return Err(Box::new(Attempt::Fatal(found.record(
                Outcome::Failed,
                Some(format!("{} is not configured on this service", job.source)),
            ))));
        };
        let email = self.resolve_requester(helpdesk, job, found).await?;
        found.email = Some(email.clone());
        let Some(stats) = self.look_up(&email, found).await? else {
            // No row: LTV counts as 0 and nothing is tagged (whatever the lowest tier says).
            found.stats = Some(CustomerStats::default());
            return Ok(found.finished(Outcome::UnknownCustomer, None));
        };
        found.stats = Some(stats.clone());
        let missing = match self.decide(job, &stats, found) {
            Ok(missing) => missing,
            Err(outcome) => return Ok(found.finished(outcome, None)),
        };
        Ok(self.write(helpdesk, job, missing, found).await)
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

    /// 3. Which tags (pure), and which of them the ticket still lacks. `Err` is the outcome when
    ///    there is nothing to write.
    fn decide(
        &self,
        job: &Job,
        stats: &CustomerStats,
        found: &mut Findings,
    ) -> Result<Vec<Tag>, Outcome> {
        let tags = self.policy.load().decide(stats);
        found.decided = tags.clone();
        if tags.is_empty() {
            return Err(Outcome::NoTags);
        }
        let missing: Vec<Tag> = tags
            .into_iter()
            .filter(|t| !job.ticket_tags.iter().any(|have| t.is_on(have, job.source)))
            .collect();
        if missing.is_empty() {
            // The ticket already carries every decided tag: writing again would only re-fire
            // triggers.
            return Err(Outcome::AlreadyTagged);
        }
        Ok(missing)
    }

    /// 4. Write the missing tags (in shadow mode: record them, write nothing).
    async fn write(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        missing: Vec<Tag>,
        found: &mut Findings,
    ) -> Attempt {
        if self.policy.load().mode() == Mode::Shadow {
            return self.shadow(missing, found);
        }
        match helpdesk.add_tags(job.ticket_id, &missing).await {
            Ok(()) => {
                found.written = missing;
                found.finished(Outcome::Tagged, None)
            }
            Err(e) => Attempt::from_helpdesk_error(e, found.record(Outcome::Failed, None)),
        }
    }
}
