//! The text of the SQLite group-commit batch statements (`inbox_batch.rs`), built once per shape.
//! (PostgreSQL commits a batch through one function call instead: `inbox_batch_pg.rs`.)
//!
//! A batch takes the smallest shape (a power of two of rows) that holds it; the rows to spare are
//! padded (NULL rows that the `where` drops, or a repeated link), so about eight texts per
//! statement serve every batch size and stay prepared in the connection's statement cache rather
//! than being parsed afresh for each batch. The inserts take the time `now` as their first parameter
//! and every row's values after it, in order. The placeholders are anonymous `?`: binding `$N`
//! names costs SQLite a walk of its name list per parameter (quadratic in the batch), `?` nothing.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::OnceLock;

use crate::domain::JobState;

/// Columns bound per event (inbox) and per ticket (job).
pub(super) const INBOX_COLS: usize = 5;
pub(super) const JOB_COLS: usize = 7;

/// Shapes 1, 2, 4, … 1024 rows: the largest holds `state.group_commit_max_batch` (at most 1000).
const SHAPES: usize = 11;

/// The rows a statement for `n` rows is built for.
pub(super) fn shape(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// The NULL parameters that pad `rows` rows of `cols` columns up to their shape (a NULL row is
/// dropped by the statement's `where`).
pub(super) fn padding(rows: usize, cols: usize) -> usize {
    (shape(rows) - rows) * cols
}

type Texts = [OnceLock<String>; SHAPES];

fn cached(texts: &'static Texts, rows: usize, build: fn(usize) -> String) -> Cow<'static, str> {
    let slot = shape(rows).trailing_zeros() as usize;
    match texts.get(slot) {
        Some(cell) => Cow::Borrowed(cell.get_or_init(|| build(shape(rows)))),
        // Beyond the largest shape (the config does not allow it): built for this batch.
        None => Cow::Owned(build(shape(rows))),
    }
}

/// `(values (…), (…)) as v`: `rows` rows of `cols` placeholders.
fn values(sql: &mut String, rows: usize, cols: usize) {
    sql.push_str("(values ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
        }
        sql.push(')');
    }
    sql.push_str(") as v");
}

const NOW_SOURCE: &str = " from (select ? as now) as t, ";

/// Step 1, inbox rows; a key already stored, or earlier in the batch, returns no row.
pub(super) fn inbox(rows: usize) -> Cow<'static, str> {
    static TEXTS: Texts = [const { OnceLock::new() }; SHAPES];
    cached(&TEXTS, rows, |rows| {
        let mut sql = String::from(
            "insert into inbox (source, dedupe_key, ticket_id, event_type, body, received_at)
             select v.column1, v.column2, v.column3, v.column4, v.column5, t.now",
        );
        sql.push_str(NOW_SOURCE);
        values(&mut sql, rows, INBOX_COLS);
        sql.push_str(
            " where v.column1 is not null
              on conflict (source, dedupe_key) do nothing returning id, source, dedupe_key",
        );
        sql
    })
}

/// Step 2, one job upsert per ticket (the conflict target repeats `job_queued_ticket_uq`'s predicate).
pub(super) fn job(rows: usize) -> Cow<'static, str> {
    static TEXTS: Texts = [const { OnceLock::new() }; SHAPES];
    cached(&TEXTS, rows, |rows| {
        let mut sql = format!(
            "insert into job (source, ticket_id, requester_email, requester_id, ticket_tags,
                              event_count, state, attempts, run_at, created_at, updated_at,
                              ticket_updated_at)
             select v.column1, v.column2, v.column3, v.column4, v.column5, v.column6,
                    '{queued}', 0, t.now, t.now, t.now, v.column7",
            queued = JobState::Queued
        );
        sql.push_str(NOW_SOURCE);
        values(&mut sql, rows, JOB_COLS);
        let _ = write!(
            sql,
            " where v.column1 is not null {on_conflict}
              returning id, source, ticket_id, event_count",
            on_conflict = *super::inbox::JOB_ON_CONFLICT,
        );
        sql
    })
}

/// Step 3, each inbox row linked to its job, from `(inbox id, job id)` rows (no `now`); the padding
/// repeats the last row.
pub(super) fn link(rows: usize) -> Cow<'static, str> {
    static TEXTS: Texts = [const { OnceLock::new() }; SHAPES];
    cached(&TEXTS, rows, |rows| {
        let mut sql = String::from("update inbox set job_id = v.column2 from ");
        values(&mut sql, rows, 2);
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
        let (three, four) = (inbox(3), inbox(4));
        assert!(matches!(three, Cow::Borrowed(_)) && three == four);
        assert_ne!(four, inbox(8));
        assert!(matches!(link(1500), Cow::Owned(_)));
    }

    #[test]
    fn placeholders_are_anonymous() {
        let two = job(2);
        assert_eq!(two.matches('?').count(), 1 + 2 * JOB_COLS);
        assert!(!two.contains('$'));
    }
}
