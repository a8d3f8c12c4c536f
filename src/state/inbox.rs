//! The inbox: an authentic event and its job commit in one transaction, before the 202.
//!
//! A repeated delivery (same dedupe key) commits nothing; a later event of a ticket whose job is
//! still waiting is folded into that job (coalesced), so one lookup and one write serve both; the
//! later event's requester wins.

use std::sync::LazyLock;

use sqlx::Row;

use super::{join_tags, requester_columns, StateStore};
use crate::clock::Millis;
use crate::domain::{JobId, JobState, Requester, Source, TicketId};

/// An authentic, well-formed event ready to be committed.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: Source,
    pub ticket_id: TicketId,
    pub event_type: String,
    pub requester: Option<Requester>,
    pub ticket_tags: Vec<String>,
    /// The ticket's `updated_at` as the event saw it (Zendesk), for a safe update.
    pub ticket_updated_at: Option<String>,
    pub dedupe_key: String,
    pub body: String,
}

/// What committing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job for the ticket.
    Queued(JobId),
    /// Folded into the ticket's job that was already waiting.
    Coalesced(JobId),
    /// The same delivery was committed before: nothing new.
    Duplicate,
}

impl Enqueued {
    /// The `status` word of the webhook's 202 answer.
    pub fn status(self) -> &'static str {
        match self {
            Enqueued::Queued(_) => JobState::Queued.as_str(),
            Enqueued::Coalesced(_) => "coalesced",
            Enqueued::Duplicate => "duplicate",
        }
    }

    pub fn job_id(self) -> Option<JobId> {
        match self {
            Enqueued::Queued(id) | Enqueued::Coalesced(id) => Some(id),
            Enqueued::Duplicate => None,
        }
    }
}

const INSERT_INBOX: &str =
    "insert into inbox (source, dedupe_key, ticket_id, event_type, body, received_at)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (source, dedupe_key) do nothing
     returning id";

/// The upsert's conflict clause, shared by the one-event and the batch upserts (`batch_sql.rs`).
/// The conflict target repeats the partial index's predicate (`job_queued_ticket_uq`). A later
/// event that names a requester replaces the waiting job's requester, email and id together (the
/// ticket's requester may have changed; mixing the two would look up someone else). The insert's
/// `event_count` is the events it stands for (1 here, a ticket's events in a batch).
pub(super) static JOB_ON_CONFLICT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "on conflict (source, ticket_id) where state = '{queued}'
         do update set requester_email = case when {names} then excluded.requester_email
                                              else job.requester_email end,
                       requester_id = case when {names} then excluded.requester_id
                                           else job.requester_id end,
                       ticket_tags = excluded.ticket_tags,
                       ticket_updated_at = excluded.ticket_updated_at,
                       event_count = job.event_count + excluded.event_count,
                       updated_at = excluded.updated_at",
        queued = JobState::Queued,
        names = "excluded.requester_email is not null or excluded.requester_id is not null",
    )
});

static UPSERT_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "insert into job (source, ticket_id, requester_email, requester_id, ticket_tags,
                          event_count, state, attempts, run_at, created_at, updated_at,
                          ticket_updated_at)
         values ($1, $2, $3, $4, $5, 1, '{queued}', 0, $6, $6, $6, $7)
         {on_conflict}
         returning id, event_count",
        queued = JobState::Queued,
        on_conflict = *JOB_ON_CONFLICT,
    )
});

impl StateStore {
    /// Commits the inbox row and its job in one transaction.
    pub async fn enqueue(&self, ev: &NewEvent, now: Millis) -> Result<Enqueued, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inbox_id: Option<i64> = sqlx::query_scalar(INSERT_INBOX)
            .bind(ev.source.as_str())
            .bind(&ev.dedupe_key)
            .bind(ev.ticket_id.to_string())
            .bind(&ev.event_type)
            .bind(&ev.body)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(inbox_id) = inbox_id else {
            tx.rollback().await?;
            return Ok(Enqueued::Duplicate);
        };
        let (email, id) = requester_columns(ev);
        let row = sqlx::query(&UPSERT_JOB)
            .bind(ev.source.as_str())
            .bind(ev.ticket_id.to_string())
            .bind(email)
            .bind(id)
            .bind(join_tags(&ev.ticket_tags))
            .bind(now)
            .bind(ev.ticket_updated_at.as_deref())
            .fetch_one(&mut *tx)
            .await?;
        let job_id: JobId = row.try_get("id")?;
        let event_count: i64 = row.try_get("event_count")?;
        sqlx::query("update inbox set job_id = $1 where id = $2")
            .bind(job_id)
            .bind(inbox_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if event_count > 1 {
            Enqueued::Coalesced(job_id)
        } else {
            Enqueued::Queued(job_id)
        })
    }
}
