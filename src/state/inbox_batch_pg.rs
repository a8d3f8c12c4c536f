//! The batch commit on PostgreSQL: one call of the `ltv_enqueue_batch` function, one round trip.
//!
//! The function (created by the migration `…_enqueue_batch_function.sql`, rewritten by
//! `…_enqueue_batch_jobs_first.sql`) commits what the SQLite path in `inbox_batch.rs` commits (the
//! new inbox rows, one job upsert per ticket with its events folded, each row linked to its job),
//! in ticket and then key order; it upserts the jobs first, so each inbox row is written once,
//! with its job. Sent as a single statement outside an explicit transaction it is atomic on its
//! own: no `begin` and `commit` round trips, and the answer comes only after the commit. The batch
//! travels as one JSON parameter (the `Any` driver binds no arrays), so the statement text never
//! changes and stays prepared.

use serde::Serialize;
use sqlx::Row;

use super::{join_tags, requester_columns, Enqueued, NewEvent, StateStore};
use crate::clock::Millis;
use crate::domain::JobId;

const CALL: &str = "select i, job_id, status from ltv_enqueue_batch($1::json, $2)";

/// One event as the function reads it (`json_to_recordset`).
#[derive(Serialize)]
struct EventRow<'a> {
    /// 1-based position in the batch.
    i: i64,
    source: &'a str,
    key: &'a str,
    ticket: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    body: &'a str,
    email: Option<&'a str>,
    rid: Option<&'a str>,
    tags: String,
    stamp: Option<&'a str>,
}

impl StateStore {
    /// [`StateStore::enqueue_batch`] on PostgreSQL.
    pub(super) async fn enqueue_batch_pg(
        &self,
        events: &[&NewEvent],
        now: Millis,
    ) -> Result<Vec<Enqueued>, sqlx::Error> {
        let rows: Vec<EventRow<'_>> = events
            .iter()
            .zip(1..)
            .map(|(ev, i)| {
                let (email, rid) = requester_columns(ev);
                EventRow {
                    i,
                    source: ev.source.as_str(),
                    key: &ev.dedupe_key,
                    ticket: ev.ticket_id.to_string(),
                    event_type: &ev.event_type,
                    body: &ev.body,
                    email,
                    rid,
                    tags: join_tags(&ev.ticket_tags),
                    stamp: ev.ticket_updated_at.as_deref(),
                }
            })
            .collect();
        let json = serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let answers = sqlx::query(CALL)
            .bind(json)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut out = vec![None; events.len()];
        for row in answers {
            let i: i64 = row.try_get("i")?;
            let job: Option<JobId> = row.try_get("job_id")?;
            let status: String = row.try_get("status")?;
            let outcome = match (status.as_str(), job) {
                ("queued", Some(job)) => Enqueued::Queued(job),
                ("coalesced", Some(job)) => Enqueued::Coalesced(job),
                ("duplicate", None) => Enqueued::Duplicate,
                _ => return Err(answer_error(format!("event {i}: {status} {job:?}"))),
            };
            let slot = usize::try_from(i - 1)
                .ok()
                .and_then(|n| out.get_mut(n))
                .ok_or_else(|| answer_error(format!("no event {i} in the batch")))?;
            *slot = Some(outcome);
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| answer_error("an event got no answer".into())))
            .collect()
    }
}

/// The function answered something it never answers (its migration and this file disagree).
fn answer_error(what: String) -> sqlx::Error {
    sqlx::Error::Protocol(format!("ltv_enqueue_batch answered {what}"))
}
