//! The inbox commit of a whole batch of events in one transaction and three statements (SQLite).
//!
//! On PostgreSQL the same three steps run inside one function call, one round trip
//! (`inbox_batch_pg.rs`); SQLite runs in-process, where a round trip costs little.
//!
//! It does what [`StateStore::enqueue`] would do for each event in turn, but with one multi-row
//! statement per step, so a batch costs three round trips to the database rather than three per
//! event: (1) the inbox rows, a repeated dedupe key skipped (`on conflict do nothing`); (2) one
//! job per ticket, the ticket's events folded first as sequential upserts would fold them (the
//! latest requester and tags win, `event_count` grows by the number of events); (3) each inbox
//! row linked to its job. Rows go in batch order: SQLite has one writer, so batches never run at
//! once and lock order does not matter here (the PostgreSQL function locks tickets, then keys, in
//! sorted order). The statements come in a few fixed shapes (`batch_sql.rs`), padded up to the
//! next power of two, so they stay prepared.

use std::collections::HashMap;

use sqlx::Row;

use super::{batch_sql, join_tags, requester_columns, Backend, Enqueued, NewEvent, StateStore};
use crate::clock::Millis;
use crate::domain::JobId;

/// One ticket's events of the batch that were not duplicates, folded into one job upsert.
struct TicketJob<'a> {
    source: &'a str,
    ticket: String,
    email: Option<&'a str>,
    requester_id: Option<&'a str>,
    tags: String,
    /// The latest event's `updated_at` of the ticket.
    stamp: Option<&'a str>,
    /// Indexes into the batch, in order.
    events: Vec<usize>,
}

impl StateStore {
    /// Commits every event of a batch in one transaction: all are stored or none. A dedupe key
    /// or ticket that repeats inside the batch is recognised as it would be across separate
    /// transactions (the later delivery a duplicate; the later event coalesced).
    pub async fn enqueue_batch(
        &self,
        events: &[&NewEvent],
        now: Millis,
    ) -> Result<Vec<Enqueued>, sqlx::Error> {
        let mut out = vec![Enqueued::Duplicate; events.len()];
        if events.is_empty() {
            return Ok(out);
        }
        if self.backend == Backend::Postgres {
            return self.enqueue_batch_pg(events, now).await;
        }
        let mut tx = self.pool.begin().await?;

        // 1. Inbox rows, in batch order; a key already stored, or earlier in the batch, returns
        // no row.
        let sql = batch_sql::inbox(events.len());
        let mut q = sqlx::query(&sql).bind(now);
        for ev in events {
            q = q
                .bind(ev.source.as_str())
                .bind(&ev.dedupe_key)
                .bind(ev.ticket_id.to_string())
                .bind(&ev.event_type)
                .bind(&ev.body);
        }
        for _ in 0..batch_sql::padding(events.len(), batch_sql::INBOX_COLS) {
            q = q.bind(None::<&str>);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut inserted: HashMap<(String, String), i64> = HashMap::with_capacity(rows.len());
        for row in rows {
            inserted.insert(
                (row.try_get("source")?, row.try_get("dedupe_key")?),
                row.try_get("id")?,
            );
        }
        // The first event holding a key got its row; any later one with that key is a duplicate.
        let mut inbox_ids: Vec<Option<i64>> = vec![None; events.len()];
        for (i, ev) in events.iter().enumerate() {
            inbox_ids[i] =
                inserted.remove(&(ev.source.as_str().to_string(), ev.dedupe_key.clone()));
        }

        // 2. One job upsert per ticket.
        let mut tickets: Vec<TicketJob<'_>> = Vec::new();
        let mut by_ticket: HashMap<(&str, String), usize> = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            if inbox_ids[i].is_none() {
                continue;
            }
            let (email, requester_id) = requester_columns(ev);
            let key = (ev.source.as_str(), ev.ticket_id.to_string());
            let slot = *by_ticket.entry(key.clone()).or_insert_with(|| {
                tickets.push(TicketJob {
                    source: key.0,
                    ticket: key.1,
                    email: None,
                    requester_id: None,
                    tags: String::new(),
                    stamp: None,
                    events: Vec::new(),
                });
                tickets.len() - 1
            });
            let t = &mut tickets[slot];
            // A later event naming a requester replaces email and id together (as `enqueue`).
            if ev.requester.is_some() {
                t.email = email;
                t.requester_id = requester_id;
            }
            t.tags = join_tags(&ev.ticket_tags);
            t.stamp = ev.ticket_updated_at.as_deref();
            t.events.push(i);
        }
        if tickets.is_empty() {
            tx.rollback().await?;
            return Ok(out);
        }
        let sql = batch_sql::job(tickets.len());
        let mut q = sqlx::query(&sql).bind(now);
        for t in &tickets {
            q = q
                .bind(t.source)
                .bind(&t.ticket)
                .bind(t.email)
                .bind(t.requester_id)
                .bind(&t.tags)
                .bind(t.events.len() as i64)
                .bind(t.stamp);
        }
        for _ in 0..batch_sql::padding(tickets.len(), batch_sql::JOB_COLS) {
            q = q.bind(None::<&str>);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut jobs: HashMap<(String, String), (JobId, i64)> = HashMap::with_capacity(rows.len());
        for row in rows {
            jobs.insert(
                (row.try_get("source")?, row.try_get("ticket_id")?),
                (row.try_get("id")?, row.try_get("event_count")?),
            );
        }

        // 3. Each inbox row linked to its job, in one statement.
        let mut links: Vec<(i64, JobId)> = Vec::with_capacity(events.len());
        for t in &tickets {
            let Some(&(job_id, event_count)) = jobs.get(&(t.source.to_string(), t.ticket.clone()))
            else {
                return Err(sqlx::Error::RowNotFound);
            };
            // A job that existed before this batch makes even its first event here coalesced.
            let fresh = event_count == t.events.len() as i64;
            for (n, &i) in t.events.iter().enumerate() {
                out[i] = if n == 0 && fresh {
                    Enqueued::Queued(job_id)
                } else {
                    Enqueued::Coalesced(job_id)
                };
                if let Some(inbox_id) = inbox_ids[i] {
                    links.push((inbox_id, job_id));
                }
            }
        }
        let sql = batch_sql::link(links.len());
        let mut q = sqlx::query(&sql);
        let pad = links.last().copied();
        for (inbox_id, job_id) in links.iter().copied().chain(
            pad.into_iter()
                .cycle()
                .take(batch_sql::shape(links.len()) - links.len()),
        ) {
            q = q.bind(inbox_id).bind(job_id);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(out)
    }
}
