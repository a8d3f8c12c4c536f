//! The text of the group-commit batch statements (`inbox_batch.rs`), built once per shape.
//!
//! A batch takes the smallest shape (a power of two of rows) that holds it; the rows to spare are
//! padded (NULL rows that the `where` drops, or a repeated link), so about eight texts per
//! statement serve every batch size and stay prepared in the connection's statement cache rather
//! than being parsed afresh for each batch. The inserts take the time `now` as their first parameter
//! and every row's values after it, in order, so one binding order fits both backends. SQLite gets anonymous `?`
//! placeholders: binding `$N` names costs SQLite a walk of its name list per parameter (quadratic
//! in the batch), `?` costs nothing.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::OnceLock;

use super::Backend;
use crate::domain::JobState;

/// Columns bound per event (inbox) and per ticket (job).
const INBOX_COLS: usize = 5;
const JOB_COLS: usize = 7;

/// Shapes 1, 2, 4, … 1024 rows: the largest holds `state.group_commit_max_batch` (at most 1000).
const SHAPES: usize = 11;

/// The rows a statement for `n` rows is built for.
pub(super) fn shape(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

type Texts = [OnceLock<String>; SHAPES];

fn cached(
    texts: &'static [Texts; 2],
    backend: Backend,
    rows: usize,
    build: fn(Backend, usize) -> String,
) -> Cow<'static, str> {
    let slot = shape(rows).trailing_zeros() as usize;
    match texts[usize::from(backend == Backend::Postgres)].get(slot) {
        Some(cell) => Cow::Borrowed(cell.get_or_init(|| build(backend, shape(rows)))),
        // Beyond the largest shape (the config does not allow it): built for this batch.
        None => Cow::Owned(build(backend, shape(rows))),
    }
}

/// Placeholder number `i` (1-based) in the backend's syntax.
fn param(sql: &mut String, backend: Backend, i: usize) {
    let _ = match backend {
        Backend::Sqlite => write!(sql, "?"),
        Backend::Postgres => write!(sql, "${i}"),
    };
}

/// `(values (…), (…)) as v`: `rows` rows of `cols` placeholders, numbered from `first`.
fn values(sql: &mut String, backend: Backend, first: usize, rows: usize, cols: usize) {
    sql.push_str("(values ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            param(sql, backend, first + r * cols + c);
        }
        sql.push(')');
    }
    sql.push_str(") as v");
}

fn now_source(sql: &mut String, backend: Backend) {
    sql.push_str(" from (select ");
    param(sql, backend, 1);
    sql.push_str(" as now) as t, ");
}

/// Step 1, inbox rows; a key already stored, or earlier in the batch, returns no row.
pub(super) fn inbox(backend: Backend, rows: usize) -> Cow<'static, str> {
    static TEXTS: [Texts; 2] = [const { [const { OnceLock::new() }; SHAPES] }; 2];
    cached(&TEXTS, backend, rows, |backend, rows| {
        let mut sql = String::from(
            "insert into inbox (source, dedupe_key, ticket_id, event_type, body, received_at)
             select v.column1, v.column2, v.column3, v.column4, v.column5, t.now",
        );
        now_source(&mut sql, backend);
        values(&mut sql, backend, 2, rows, INBOX_COLS);
        sql.push_str(
            " where v.column1 is not null
              on conflict (source, dedupe_key) do nothing returning id, source, dedupe_key",
        );
        sql
    })
}

/// Step 2, one job upsert per ticket (the conflict target repeats `job_queued_ticket_uq`'s predicate).
pub(super) fn job(backend: Backend, rows: usize) -> Cow<'static, str> {
    static TEXTS: [Texts; 2] = [const { [const { OnceLock::new() }; SHAPES] }; 2];
    cached(&TEXTS, backend, rows, |backend, rows| {
        let mut sql = format!(
            "insert into job (source, ticket_id, requester_email, requester_id, ticket_tags,
                              event_count, state, attempts, run_at, created_at, updated_at,
                              ticket_updated_at)
             select v.column1, v.column2, v.column3, v.column4, v.column5, v.column6,
                    '{queued}', 0, t.now, t.now, t.now, v.column7",
            queued = JobState::Queued
        );
        now_source(&mut sql, backend);
        values(&mut sql, backend, 2, rows, JOB_COLS);
        let _ = write!(
            sql,
            " where v.column1 is not null
              on conflict (source, ticket_id) where state = '{queued}'
              do update set requester_email = case when {names} then excluded.requester_email
                                                   else job.requester_email end,
                            requester_id = case when {names} then excluded.requester_id
                                                else job.requester_id end,
                            ticket_tags = excluded.ticket_tags,
                            ticket_updated_at = excluded.ticket_updated_at,
                            event_count = job.event_count + excluded.event_count,
                            updated_at = excluded.updated_at
              returning id, source, ticket_id, event_count",
            queued = JobState::Queued,
            names = super::inbox::NAMES_REQUESTER,
        );
        sql
    })
}

/// Step 3, each inbox row linked to its job, from `(inbox id, job id)` rows (no `now`); the padding
/// repeats the last row.
pub(super) fn link(backend: Backend, rows: usize) -> Cow<'static, str> {
    static TEXTS: [Texts; 2] = [const { [const { OnceLock::new() }; SHAPES] }; 2];
    cached(&TEXTS, backend, rows, |backend, rows| {
        let mut sql = String::from("update inbox set job_id = v.column2 from ");
        values(&mut sql, backend, 1, rows, 2);
        sql.push_str(" where inbox.id = v.column1");
        sql
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handful_of_shapes_serve_every_batch_size() {
        assert_eq!(
            [1, 2, 3, 5, 100, 128, 129, 1000].map(shape),
            [1, 2, 4, 8, 128, 128, 256, 1024]
        );
        let (three, four) = (inbox(Backend::Sqlite, 3), inbox(Backend::Sqlite, 4));
        assert!(matches!(three, Cow::Borrowed(_)) && three == four);
        assert_ne!(four, inbox(Backend::Postgres, 4));
        assert!(matches!(link(Backend::Postgres, 1500), Cow::Owned(_)));
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders_and_postgres_numbered_ones() {
        let lite = job(Backend::Sqlite, 2);
        assert_eq!(lite.matches('?').count(), 1 + 2 * JOB_COLS);
        assert!(!lite.contains('$'));
        let pg = job(Backend::Postgres, 2);
        assert!(pg.contains("$1 as now") && pg.contains("$15)") && !pg.contains("$16"));
    }
}
