//! SQLite checkpoints off the commit path.
//!
//! In WAL mode a commit appends pages to the log, and a checkpoint copies them back into the
//! database file and syncs it. By default SQLite checkpoints inside the commit that takes the log
//! past 1,000 pages, on the connection that committed: on the state store's one connection, so
//! every request waiting for a commit also waits for the copy and its fsync. A batch of webhooks
//! writes about ten pages, so under 1,000 webhooks/s that was several stalls a second (the tail
//! latency in BENCHMARKS.md, "Group commit").
//!
//! `serve` runs [`checkpoint_periodically`] instead: every [`EVERY`] a passive checkpoint on a
//! connection of its own, which neither waits for the writer nor makes it wait. The writer's own
//! checkpoint stays as a backstop at [`WRITER_AUTOCHECKPOINT_PAGES`] (a log that kept growing
//! because every background checkpoint overlapped a commit, or a process that runs no
//! checkpointer: the CLI). Durability is unchanged: a commit is durable once its log pages are
//! synced, which the commit does itself; the checkpoint only moves them.

use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio_util::sync::CancellationToken;

use super::{Backend, StateStore};

/// How often the background checkpoint runs.
pub const EVERY: Duration = Duration::from_millis(100);

/// The log size (pages) at which a committing connection checkpoints by itself (SQLite's default
/// is 1,000): 8,192 pages of 4 KiB, 32 MiB.
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8192;

/// One passive checkpoint on `conn`, a connection of its own to the SQLite store.
async fn checkpoint_on(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("pragma wal_checkpoint(passive)")
        .execute(conn)
        .await
        .map(drop)
}

/// Runs a passive checkpoint every [`EVERY`] until `stop` is cancelled (SQLite only; returns at
/// once on PostgreSQL). A failure is logged once, and the connection is opened again.
pub async fn checkpoint_periodically(store: StateStore, stop: CancellationToken) {
    if store.backend != Backend::Sqlite {
        return;
    }
    let options = store.pool.connect_options();
    let mut conn: Option<AnyConnection> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let result = match conn.as_mut() {
            Some(c) => checkpoint_on(c).await,
            None => match AnyConnection::connect_with(&options).await {
                Ok(c) => checkpoint_on(conn.insert(c)).await,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("state DB checkpoints run again");
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "state DB checkpoint failed; commits checkpoint by themselves meanwhile");
                }
                failing = true;
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}
