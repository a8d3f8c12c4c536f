//! What agents see besides tags: the helpdesk's custom fields and, once per ticket, its internal
//! note, added to a write the decision already needs (they never cause a call of their own).

use super::Worker;
use crate::clock::Millis;
use crate::domain::{CustomerEmail, CustomerStats};
use crate::helpdesk::{Helpdesk, TicketUpdate};
use crate::state::Job;

impl Worker {
    /// Adds the custom fields and, when this ticket has none yet, the note to `update`.
    /// `Ok(true)`: the note was added (record it once the write succeeded).
    pub(super) async fn annotate(
        &self,
        helpdesk: &dyn Helpdesk,
        job: &Job,
        email: &CustomerEmail,
        stats: &CustomerStats,
        update: &mut TicketUpdate,
    ) -> Result<bool, sqlx::Error> {
        let Some(view) = helpdesk.view() else {
            return Ok(false);
        };
        let policy = self.policy.load();
        let decision = policy.explain(stats);
        update.fields = view.field_values(&policy, stats, &decision.tags);
        if view.note_template.is_none()
            || self.store.note_written(job.source, job.ticket_id).await?
        {
            return Ok(false);
        }
        update.note = view.note(email, stats, &decision);
        Ok(update.note.is_some())
    }

    /// The write carried the note: remember it, so the ticket never gets a second one.
    pub(super) async fn remember_note(&self, job: &Job) {
        if let Err(e) = self
            .store
            .record_note(job.source, job.ticket_id, Millis::now())
            .await
        {
            tracing::warn!(error = %e, "cannot record the internal note: a later event may write it again");
        }
    }
}
