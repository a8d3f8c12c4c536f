//! The queue as bulk writes see it: how many jobs of a helpdesk are ready, a claim of ready jobs
//! never tried before (a job that failed once is retried on its own), and one statement that
//! renews the leases of a whole batch.

use std::sync::LazyLock;
use std::time::Duration;

use super::db_clock::now_ms;
use super::queue::{claim_sql, lease_ms};
use super::{Backend, LeasedJob, StateStore};
use crate::clock::Millis;
use crate::domain::{JobState, Source};

const FRESH: &str = "and j.source = $5 and j.attempts = 0";

static CLAIM_FRESH_SQLITE: LazyLock<String> =
    LazyLock::new(|| claim_sql(Backend::Sqlite, "", FRESH));
static CLAIM_FRESH_POSTGRES: LazyLock<String> =
    LazyLock::new(|| claim_sql(Backend::Postgres, "for update skip locked", FRESH));

static READY_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "select count(*) from job where state = '{}' and run_at <= $1 and source = $2",
        JobState::Queued
    )
});

impl StateStore {
    /// Jobs of `source` waiting whose time has come (the backlog single writes would face).
    pub async fn ready_jobs(&self, source: Source, now: Millis) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(&READY_JOBS)
            .bind(now)
            .bind(source.as_str())
            .fetch_one(&self.pool)
            .await
    }

    /// Leases up to `max` ready jobs of `source` that were never tried, oldest first.
    pub async fn claim_fresh(
        &self,
        owner: &str,
        source: Source,
        max: usize,
        lease: Duration,
        now: Millis,
    ) -> Result<Vec<LeasedJob>, sqlx::Error> {
        let sql = match self.backend {
            Backend::Postgres => &*CLAIM_FRESH_POSTGRES,
            Backend::Sqlite => &*CLAIM_FRESH_SQLITE,
        };
        self.claim_with(sql, Some(source.as_str()), owner, max, lease, now)
            .await
    }

    /// Extends the leases of `jobs` (all held by one owner) in one statement; returns how many
    /// are still ours.
    pub async fn renew_leases(
        &self,
        jobs: &[LeasedJob],
        lease: Duration,
        now: Millis,
    ) -> Result<u64, sqlx::Error> {
        let Some(first) = jobs.first() else {
            return Ok(0);
        };
        let ids: Vec<String> = jobs.iter().map(|j| j.id.get().to_string()).collect();
        // The ids are our own integers, written into the statement: no bind per job.
        let sql = format!(
            "update job set lease_until = {} + $1, updated_at = $2
             where lease_owner = $3 and state = '{}' and id in ({})",
            now_ms(self.backend),
            JobState::Running,
            ids.join(",")
        );
        let r = sqlx::query(&sql)
            .bind(lease_ms(lease))
            .bind(now)
            .bind(first.owner())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
