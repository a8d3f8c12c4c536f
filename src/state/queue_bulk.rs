//! The queue as bulk writes see it: how many jobs of a helpdesk are ready, a claim of ready jobs
//! never tried before (a job that failed once is retried on its own), and one statement each
//! that renews or gives back the leases of a whole batch.

use std::sync::LazyLock;
use std::time::Duration;

use super::db_clock::now_ms;
use super::queue::{claim_sql, lease_ms, NEWER_WAITING, SUPERSEDED};
use super::{is_unique_violation, Backend, LeasedJob, StateStore};
use crate::clock::Millis;
use crate::domain::{JobId, JobState, Source};

const FRESH: &str = "and j.source = $5 and j.attempts = 0";

static CLAIM_FRESH_SQLITE: LazyLock<String> =
    LazyLock::new(|| claim_sql(Backend::Sqlite, "", FRESH));
static CLAIM_FRESH_POSTGRES: LazyLock<String> =
    LazyLock::new(|| claim_sql(Backend::Postgres, "for update skip locked", FRESH));

/// Counts at most `$3` rows: the dispatcher asks every second, and a count of the whole backlog
/// would read every waiting job's index entry each time (tens of thousands after a burst, on
/// SQLite while the one connection waits).
static READY_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "select count(*) from (select 1 from job
                               where state = '{}' and run_at <= $1 and source = $2
                               limit $3) as ready",
        JobState::Queued
    )
});

impl StateStore {
    /// Jobs of `source` waiting whose time has come (the backlog single writes would face),
    /// counted up to `up_to`: a larger backlog answers `up_to`.
    pub async fn ready_jobs(
        &self,
        source: Source,
        now: Millis,
        up_to: usize,
    ) -> Result<usize, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(&READY_JOBS)
            .bind(now)
            .bind(source.as_str())
            .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
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

    /// Extends the leases of `jobs` (all held by one owner) in one statement; returns the jobs
    /// whose lease is still ours (one that expired and was claimed again is not).
    pub async fn renew_leases(
        &self,
        jobs: &[LeasedJob],
        lease: Duration,
        now: Millis,
    ) -> Result<Vec<JobId>, sqlx::Error> {
        let Some(first) = jobs.first() else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "update job set lease_until = {} + $1, updated_at = $2
             where {} returning id",
            now_ms(self.backend),
            leases_of(jobs, 3)
        );
        // The text changes with the jobs: not kept in the statement cache.
        sqlx::query_scalar(&sql)
            .persistent(false)
            .bind(lease_ms(lease))
            .bind(now)
            .bind(first.owner())
            .fetch_all(&self.pool)
            .await
    }

    /// Gives the leases of `jobs` (all held by one owner) back in one statement, the attempts not
    /// counted (a hard stop): each job waits again, or is folded into its ticket's newer waiting
    /// job. Jobs no longer ours are left alone.
    pub async fn release_leases(&self, jobs: &[LeasedJob], now: Millis) -> Result<(), sqlx::Error> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let newer = &*NEWER_WAITING;
        let sql = format!(
            "update job set state = case when {newer} then '{merged}' else '{queued}' end,
                            last_error = case when {newer} then '{SUPERSEDED}' else last_error end,
                            run_at = $1, attempts = attempts - 1, lease_owner = null,
                            lease_until = null, updated_at = $1
             where {}",
            leases_of(jobs, 2),
            merged = JobState::Merged,
            queued = JobState::Queued,
        );
        let r = sqlx::query(&sql)
            .persistent(false)
            .bind(now)
            .bind(first.owner())
            .execute(&self.pool)
            .await;
        match r {
            Ok(_) => Ok(()),
            // A newer event for one of the tickets was queued after the statement looked: one
            // job at a time, each folded or put back on its own.
            Err(e) if is_unique_violation(&e) => {
                for job in jobs {
                    job.release(now).await?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The guard for the leases of `jobs`, held by the owner bound at `$owner`. The ids and attempts
/// are our own integers, written into the statement: no bind per job.
fn leases_of(jobs: &[LeasedJob], owner: u8) -> String {
    let leases: Vec<String> = jobs
        .iter()
        .map(|j| format!("({}, {})", j.id.get(), j.attempts))
        .collect();
    format!(
        "lease_owner = ${owner} and state = '{}' and (id, attempts) in (values {})",
        JobState::Running,
        leases.join(", ")
    )
}
