//! Where a backfill stopped, kept in the state DB (`backfill_cursor`), so a rerun resumes.

use sqlx::Row;

use crate::clock::Millis;
use crate::domain::Source;
use crate::state::StateStore;

/// A listing's saved position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The next page's cursor (`None`: the first page).
    pub cursor: Option<String>,
    pub queued: i64,
    /// The lower bound on creation time the first run chose (`--since` is relative).
    pub created_after: Option<Millis>,
    pub finished_at: Option<Millis>,
}

/// Reads the saved position of `listing`, creating it (at the first page) when new.
pub async fn load_or_start(
    store: &StateStore,
    source: Source,
    listing: &str,
    created_after: Option<Millis>,
    now: Millis,
) -> Result<Saved, sqlx::Error> {
    sqlx::query(
        "insert into backfill_cursor (source, listing, cursor, queued, created_after, finished_at,
                                      created_at, updated_at)
         values ($1, $2, null, 0, $3, null, $4, $4)
         on conflict (source, listing) do nothing",
    )
    .bind(source.as_str())
    .bind(listing)
    .bind(created_after)
    .bind(now)
    .execute(store.pool())
    .await?;
    let row = sqlx::query(
        "select cursor, queued, created_after, finished_at from backfill_cursor
         where source = $1 and listing = $2",
    )
    .bind(source.as_str())
    .bind(listing)
    .fetch_one(store.pool())
    .await?;
    Ok(Saved {
        cursor: row.try_get("cursor")?,
        queued: row.try_get("queued")?,
        created_after: row.try_get("created_after")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Records that the pages before `cursor` are queued (`None` with `finished`: the listing ended).
pub async fn save(
    store: &StateStore,
    source: Source,
    listing: &str,
    cursor: Option<&str>,
    queued: i64,
    finished: bool,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update backfill_cursor set cursor = $1, queued = $2, finished_at = $3, updated_at = $4
         where source = $5 and listing = $6",
    )
    .bind(cursor)
    .bind(queued)
    .bind(finished.then_some(now))
    .bind(now)
    .bind(source.as_str())
    .bind(listing)
    .execute(store.pool())
    .await?;
    Ok(())
}
