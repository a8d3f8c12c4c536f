//! The queue: due jobs are claimed under a lease, and the [`LeasedJob`] handle that owns the lease
//! renews it, finishes the job (with its audit row), puts it back for a retry, or releases it.

use std::ops::Deref;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::audit::{insert_audit, AuditRecord};
use super::db_clock::now_ms;
use super::{is_unique_violation, split_tags, Backend, StateStore};
use crate::clock::Millis;
use crate::domain::{CustomerEmail, JobId, JobState, Requester, RequesterId, Source, TicketId};

/// A job as claimed: what the worker needs to process it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub source: Source,
    pub ticket_id: TicketId,
    /// `None` when the events named nobody (recorded as `no_email`).
    pub requester: Option<Requester>,
    /// The ticket's tags as the latest event saw them, lower-cased.
    pub ticket_tags: Vec<String>,
    /// The ticket's `updated_at` as the latest event saw it (Zendesk): written back as
    /// `updated_stamp` with `safe_update`. `None`: a plain write.
    pub ticket_updated_at: Option<String>,
    pub event_count: i64,
    /// This attempt's number (1 for the first).
    pub attempts: i64,
    pub created_at: Millis,
}

/// How a finished job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Done,
    Dead,
}

impl Final {
    fn state(self) -> JobState {
        match self {
            Final::Done => JobState::Done,
            Final::Dead => JobState::Dead,
        }
    }
}

/// A claimed job and the lease on it. Every change goes through this handle, which carries the
/// lease: its owner and the attempt it was claimed for (each claim counts one, so a lease that
/// expired and was claimed again, even by the same process, is another). A worker that lost its
/// lease changes nothing.
#[derive(Clone)]
pub struct LeasedJob {
    job: Job,
    owner: Arc<str>,
    store: StateStore,
}

impl Deref for LeasedJob {
    type Target = Job;
    fn deref(&self) -> &Job {
        &self.job
    }
}

impl std::fmt::Debug for LeasedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeasedJob")
            .field("job", &self.job)
            .field("owner", &self.owner)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: JobId,
    source: String,
    ticket_id: String,
    requester_email: Option<String>,
    requester_id: Option<String>,
    ticket_tags: String,
    ticket_updated_at: Option<String>,
    event_count: i64,
    attempts: i64,
    created_at: Millis,
}

impl ClaimedRow {
    /// Only this program writes these columns; `None` means the row is corrupt.
    fn into_job(self) -> Option<Job> {
        let requester = match (self.requester_email, self.requester_id) {
            (Some(e), _) => Some(Requester::Email(CustomerEmail::parse(&e).ok()?)),
            (None, Some(id)) => Some(Requester::Id(RequesterId::parse(&id).ok()?)),
            (None, None) => None,
        };
        Some(Job {
            id: self.id,
            source: Source::parse(&self.source)?,
            ticket_id: TicketId::parse(&self.ticket_id).ok()?,
            requester,
            ticket_tags: split_tags(&self.ticket_tags),
            ticket_updated_at: self.ticket_updated_at,
            event_count: self.event_count,
            attempts: self.attempts,
            created_at: self.created_at,
        })
    }
}

/// Walks `job_due_ix` in `run_at` order and stops at the limit: the cost does not grow with the
/// backlog. `{lock}` is `for update skip locked` on PostgreSQL. The lease (`$2` milliseconds)
/// runs from the state DB's clock, not the replica's. `{only}` narrows the jobs claimed
/// (`queue_bulk.rs`).
pub(super) fn claim_sql(backend: Backend, lock: &str, only: &str) -> String {
    format!(
        "update job set state = '{running}', lease_owner = $1, lease_until = {db_now} + $2,
                        attempts = attempts + 1, updated_at = $3
         where id in (select j.id from job j
                      where j.state = '{queued}' and j.run_at <= $3
                        -- one ticket at a time: its later events wait, coalesced, for the
                        -- running job to finish (one lookup and one write for all of them)
                        and not exists (select 1 from job r
                                        where r.source = j.source and r.ticket_id = j.ticket_id
                                          and r.state = '{running}')
                        {only}
                      order by j.run_at limit $4 {lock})
         returning id, source, ticket_id, requester_email, requester_id, ticket_tags,
                   event_count, attempts, created_at, ticket_updated_at",
        running = JobState::Running,
        queued = JobState::Queued,
        db_now = now_ms(backend),
    )
}

static CLAIM_SQLITE: LazyLock<String> = LazyLock::new(|| claim_sql(Backend::Sqlite, "", ""));
static CLAIM_POSTGRES: LazyLock<String> =
    LazyLock::new(|| claim_sql(Backend::Postgres, "for update skip locked", ""));

/// The lease's own rows: still running under the owner `${owner}` and the attempt `${attempt}`
/// it was claimed for.
pub(super) fn held_by(owner: u8, attempt: u8) -> String {
    format!(
        "lease_owner = ${owner} and attempts = ${attempt} and state = '{}'",
        JobState::Running
    )
}

/// `$3`: the lease in milliseconds, from the state DB's clock.
fn renew_sql(backend: Backend) -> String {
    format!(
        "update job set lease_until = {} + $3, updated_at = $4
         where id = $1 and {}",
        now_ms(backend),
        held_by(2, 5)
    )
}

static RENEW_SQLITE: LazyLock<String> = LazyLock::new(|| renew_sql(Backend::Sqlite));
static RENEW_POSTGRES: LazyLock<String> = LazyLock::new(|| renew_sql(Backend::Postgres));

/// A lease's length as the SQL binds it.
pub(super) fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

static FINISH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update job set state = $3, lease_owner = null, lease_until = null,
                        last_error = $4, updated_at = $5
         where id = $1 and {}",
        held_by(2, 6)
    )
});

/// Back to the queue. `{guard}` says whose job it must be: the lease's (owner `$6`, attempt `$7`)
/// or a dead one.
fn requeue_sql(guard: &str) -> String {
    format!(
        "update job set state = '{queued}', run_at = $2, last_error = coalesce($3, last_error),
                        attempts = attempts - $4, lease_owner = null, lease_until = null,
                        updated_at = $5
         where id = $1 {guard}",
        queued = JobState::Queued
    )
}

static REQUEUE_LEASED: LazyLock<String> =
    LazyLock::new(|| requeue_sql(&format!("and {}", held_by(6, 7))));
static REQUEUE_DEAD: LazyLock<String> =
    LazyLock::new(|| requeue_sql(&format!("and state = '{}'", JobState::Dead)));

/// Why a job was folded into its ticket's newer waiting job.
pub(super) const SUPERSEDED: &str = "superseded by a newer event for the same ticket";

/// Of a `job` row being updated: its ticket has a newer job waiting (the row is then merged).
pub(super) static NEWER_WAITING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "exists (select 1 from job q where q.source = job.source
                   and q.ticket_id = job.ticket_id and q.state = '{}')",
        JobState::Queued
    )
});

static MERGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update job set state = '{}', lease_owner = null, lease_until = null,
                        last_error = '{SUPERSEDED}', updated_at = $2
         where id = $1",
        JobState::Merged
    )
});

impl StateStore {
    /// Leases up to `max` due jobs to `owner`: waiting ones whose time has come (`run_at <= now`),
    /// and (reclaimed first) running ones whose lease ran out because their worker died. Leases
    /// are set and judged by the state DB's clock; `now` stamps the rows.
    pub async fn claim(
        &self,
        owner: &str,
        max: usize,
        lease: Duration,
        now: Millis,
    ) -> Result<Vec<LeasedJob>, sqlx::Error> {
        match self.reclaim_expired(now).await {
            // A replica enqueued a job for that ticket meanwhile: the next round folds it.
            Err(e) if is_unique_violation(&e) => {}
            other => other?,
        }
        let sql = match self.backend {
            Backend::Postgres => &*CLAIM_POSTGRES,
            Backend::Sqlite => &*CLAIM_SQLITE,
        };
        self.claim_with(sql, None, owner, max, lease, now).await
    }

    /// Runs a claim statement of [`claim_sql`]; `source` binds `$5` when its `only` needs it.
    pub(super) async fn claim_with(
        &self,
        sql: &str,
        source: Option<&str>,
        owner: &str,
        max: usize,
        lease: Duration,
        now: Millis,
    ) -> Result<Vec<LeasedJob>, sqlx::Error> {
        let mut q = sqlx::query_as(sql)
            .bind(owner)
            .bind(lease_ms(lease))
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX));
        if let Some(source) = source {
            q = q.bind(source);
        }
        let rows: Vec<ClaimedRow> = q.fetch_all(&self.pool).await?;
        let owner: Arc<str> = Arc::from(owner);
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            match row.into_job() {
                Some(job) => jobs.push(LeasedJob {
                    job,
                    owner: owner.clone(),
                    store: self.clone(),
                }),
                // A bad row is parked, not retried forever.
                None => self.park_corrupt(id, &owner, now).await?,
            }
        }
        Ok(jobs)
    }

    /// Puts a job back in the queue to run at `run_at`. If a newer event for the same ticket is
    /// already waiting, this job is folded into it (state `merged`): that job will do the work.
    /// `lease` is the lease holder's name and attempt; `None` requeues a dead-lettered job.
    pub(super) async fn requeue(
        &self,
        id: JobId,
        lease: Option<(&str, i64)>,
        run_at: Millis,
        error: Option<&str>,
        refund_attempts: i64,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        let sql = match lease {
            Some(_) => &*REQUEUE_LEASED,
            None => &*REQUEUE_DEAD,
        };
        let mut q = sqlx::query(sql)
            .bind(id)
            .bind(run_at)
            .bind(error)
            .bind(refund_attempts)
            .bind(now);
        if let Some((owner, attempt)) = lease {
            q = q.bind(owner).bind(attempt);
        }
        match q.execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                sqlx::query(&MERGE)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl LeasedJob {
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The lease holder's name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The lease as the guards bind it: the holder's name and the attempt.
    fn lease(&self) -> (&str, i64) {
        (&self.owner, self.job.attempts)
    }

    /// Extends the lease; `false` when the job is no longer ours (expired and taken over).
    pub async fn renew(&self, lease: Duration, now: Millis) -> Result<bool, sqlx::Error> {
        let sql = match self.store.backend {
            Backend::Postgres => &*RENEW_POSTGRES,
            Backend::Sqlite => &*RENEW_SQLITE,
        };
        let r = sqlx::query(sql)
            .bind(self.job.id)
            .bind(&*self.owner)
            .bind(lease_ms(lease))
            .bind(now)
            .bind(self.job.attempts)
            .execute(&self.store.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends the job and records its decision in one transaction. `false` when the lease was lost.
    pub async fn finish(
        &self,
        end: Final,
        audit: &AuditRecord,
        now: Millis,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.store.pool.begin().await?;
        let r = sqlx::query(&FINISH)
            .bind(self.job.id)
            .bind(&*self.owner)
            .bind(end.state().as_str())
            .bind(match end {
                Final::Done => None,
                Final::Dead => audit.detail.as_deref(),
            })
            .bind(now)
            .bind(self.job.attempts)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut tx, &self.job, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Back to the queue until `run_at`, the attempt counted.
    pub async fn retry(&self, run_at: Millis, error: &str, now: Millis) -> Result<(), sqlx::Error> {
        self.store
            .requeue(self.job.id, Some(self.lease()), run_at, Some(error), 0, now)
            .await
    }

    /// Back to the queue until `run_at` without counting the attempt (the helpdesk account is
    /// paused: nothing was tried).
    pub async fn defer(&self, run_at: Millis, now: Millis) -> Result<(), sqlx::Error> {
        self.store
            .requeue(self.job.id, Some(self.lease()), run_at, None, 1, now)
            .await
    }

    /// Gives the job back without counting the attempt (graceful shutdown).
    pub async fn release(&self, now: Millis) -> Result<(), sqlx::Error> {
        self.store
            .requeue(self.job.id, Some(self.lease()), now, None, 1, now)
            .await
    }
}
