//! Retention: finished jobs and old inbox rows are pruned (the audit log is kept), hourly.

use std::sync::LazyLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::StateStore;
use crate::clock::Millis;
use crate::domain::JobState;

/// How often the pruning loop runs.
const EVERY: Duration = Duration::from_secs(3600);

static PRUNE_INBOX: LazyLock<String> = LazyLock::new(|| {
    format!(
        "delete from inbox where received_at < $1
           and (job_id is null or job_id in (select id from job where state in ('{done}', '{merged}')))",
        done = JobState::Done,
        merged = JobState::Merged,
    )
});

static PRUNE_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "delete from job where state in ('{done}', '{merged}') and updated_at < $1
           and id not in (select job_id from inbox where job_id is not null)",
        done = JobState::Done,
        merged = JobState::Merged,
    )
});

impl StateStore {
    /// Deletes finished jobs and inbox rows older than `retention` (the audit log is kept).
    pub async fn prune(&self, retention: Duration, now: Millis) -> Result<u64, sqlx::Error> {
        let cutoff = now - retention;
        let mut tx = self.pool.begin().await?;
        let a = sqlx::query(&PRUNE_INBOX)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let b = sqlx::query(&PRUNE_JOBS)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(a.rows_affected() + b.rows_affected())
    }
}

/// Prunes every hour until `stop` is cancelled.
pub async fn prune_periodically(store: StateStore, retention: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match store.prune(retention, Millis::now()).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned finished jobs and inbox rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "prune failed"),
        }
    }
}
