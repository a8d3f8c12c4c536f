//! Lease reclaim: jobs whose worker stopped renewing go back to the queue (or are folded into the
//! ticket's newer waiting job), and rows the program cannot read are parked as dead.

use std::sync::LazyLock;

use super::db_clock::now_ms;
use super::queue::NEWER_WAITING;
use super::{Backend, StateStore};
use crate::clock::Millis;
use crate::domain::{JobId, JobState};

/// Expired: `lease_until` is past on the state DB's clock (the lease was set by it too).
fn merge_expired_sql(backend: Backend) -> String {
    format!(
        "update job set state = '{merged}', lease_owner = null, lease_until = null,
                        last_error = 'lease expired; superseded by a newer event for the same ticket',
                        updated_at = $1
         where state = '{running}' and lease_until < {db_now} and {newer}",
        merged = JobState::Merged,
        running = JobState::Running,
        newer = *NEWER_WAITING,
        db_now = now_ms(backend),
    )
}

fn requeue_expired_sql(backend: Backend) -> String {
    format!(
        "update job set state = '{queued}', run_at = $1, lease_owner = null, lease_until = null,
                        last_error = coalesce(last_error, 'lease expired: its worker stopped'),
                        updated_at = $1
         where state = '{running}' and lease_until < {db_now}",
        queued = JobState::Queued,
        running = JobState::Running,
        db_now = now_ms(backend),
    )
}

static MERGE_EXPIRED: LazyLock<[String; 2]> = LazyLock::new(|| {
    [
        merge_expired_sql(Backend::Sqlite),
        merge_expired_sql(Backend::Postgres),
    ]
});
static REQUEUE_EXPIRED: LazyLock<[String; 2]> = LazyLock::new(|| {
    [
        requeue_expired_sql(Backend::Sqlite),
        requeue_expired_sql(Backend::Postgres),
    ]
});

static PARK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update job set state = '{}', last_error = 'corrupt job row', lease_owner = null,
                        lease_until = null, updated_at = $3
         where id = $1 and lease_owner = $2",
        JobState::Dead
    )
});

impl StateStore {
    /// Jobs whose worker stopped renewing their lease go back to the queue; one whose ticket
    /// already has a newer waiting job is folded into it (`merged`): that job covers the ticket.
    pub(super) async fn reclaim_expired(&self, now: Millis) -> Result<(), sqlx::Error> {
        let i = match self.backend {
            Backend::Sqlite => 0,
            Backend::Postgres => 1,
        };
        sqlx::query(&MERGE_EXPIRED[i])
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(&REQUEUE_EXPIRED[i])
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A claimed row this program cannot read: dead-lettered, so it is not claimed forever.
    pub(super) async fn park_corrupt(
        &self,
        id: JobId,
        owner: &str,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&PARK)
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
