//! The tickets that already carry the service's internal note (one note per ticket, ever).

use super::StateStore;
use crate::clock::Millis;
use crate::domain::{Source, TicketId};

impl StateStore {
    /// Whether the service already wrote its note on this ticket.
    pub async fn note_written(
        &self,
        source: Source,
        ticket: TicketId,
    ) -> Result<bool, sqlx::Error> {
        let row = sqlx::query("select 1 from ticket_note where source = $1 and ticket_id = $2")
            .bind(source.as_str())
            .bind(ticket.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Remembers that the note is on the ticket (a second call changes nothing).
    pub async fn record_note(
        &self,
        source: Source,
        ticket: TicketId,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into ticket_note (source, ticket_id, created_at) values ($1, $2, $3)
             on conflict (source, ticket_id) do nothing",
        )
        .bind(source.as_str())
        .bind(ticket.to_string())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
