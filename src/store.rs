//! The service's own state: inbox, job queue (with leases), shared rate budgets and the audit log.
//!
//! One `AnyPool` serves SQLite (embedded, one instance) and PostgreSQL (several replicas). The SQL is
//! written once in the dialect both accept (`$N` placeholders, `update … returning`, partial unique
//! indexes, `on conflict`); the only difference, `for update skip locked` on the claim, is switched on
//! the backend. Times are Unix epoch milliseconds, taken from the caller so tests can move the clock.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use crate::config::{redact_url_password, StateSettings};
use crate::domain::{Source, TicketId};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct StateStore {
    pool: AnyPool,
    backend: Backend,
}

/// An authentic, well-formed event ready to be committed.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: Source,
    pub ticket_id: TicketId,
    pub event_type: String,
    pub requester_email: Option<String>,
    pub requester_id: Option<String>,
    pub ticket_tags: Vec<String>,
    pub dedupe_key: String,
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job, or the event was folded into the ticket's waiting job (`coalesced`).
    Accepted { job_id: i64, coalesced: bool },
    /// The same delivery was committed before: nothing new.
    Duplicate,
}

/// A job claimed by a worker, with the lease it holds.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub source: Source,
    pub ticket_id: TicketId,
    pub requester_email: Option<String>,
    pub requester_id: Option<String>,
    pub ticket_tags: Vec<String>,
    pub event_count: i64,
    pub attempts: i64,
    pub created_at: i64,
}

/// A job as an operator sees it (`ltv-tagger jobs list`).
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub source: String,
    pub ticket_id: String,
    pub state: String,
    pub attempts: i64,
    pub event_count: i64,
    pub run_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The decision recorded for a finished job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    pub email: Option<String>,
    pub ltv: Option<String>,
    pub orders: Option<i64>,
    pub disputes: Option<i64>,
    pub tags_decided: Vec<String>,
    pub tags_written: Vec<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub job_id: i64,
    pub source: String,
    pub ticket_id: String,
    pub record: AuditRecord,
    pub attempts: i64,
    pub event_count: i64,
    pub created_at: i64,
}

/// How a finished job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Done,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenGrant {
    Granted,
    /// Try again after this long.
    Wait(Duration),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: i64,
    pub running: i64,
    pub dead: i64,
}

fn join_tags(tags: &[String]) -> String {
    tags.join(" ")
}

fn split_tags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl StateStore {
    /// Creates the pool without connecting: the server starts (and answers 503) while the DB is down.
    pub fn connect_lazy(settings: &StateSettings) -> anyhow::Result<StateStore> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if let Some(path) = settings.url.strip_prefix("sqlite://") {
            let (file, _) = path.split_once('?').unwrap_or((path, ""));
            if let Some(dir) = std::path::Path::new(file).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("state.url: cannot create directory {}", dir.display())
                    })?;
                }
            }
            let url = if path.contains('?') {
                settings.url.clone()
            } else {
                format!("{}?mode=rwc", settings.url)
            };
            (url, Backend::Sqlite)
        } else {
            (settings.url.clone(), Backend::Postgres)
        };
        let options = AnyConnectOptions::from_str(&url).with_context(|| {
            format!(
                "state.url: cannot parse {}",
                redact_url_password(&settings.url)
            )
        })?;
        // SQLite has one writer: several pooled connections only fight over its lock (the loser
        // sleeps in the busy handler), which BENCHMARKS.md measured slower and spikier than
        // queueing on one connection. The pool size applies to PostgreSQL.
        let max_connections = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => settings.max_connections,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(settings.connect_timeout)
            .connect_lazy_with(options);
        Ok(StateStore { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations (idempotent; safe to run from several replicas on PostgreSQL).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        if self.backend == Backend::Sqlite {
            // WAL lets readers go on while the one writer commits; it is stored in the file.
            sqlx::query("pragma journal_mode = wal")
                .execute(&self.pool)
                .await
                .context("cannot set SQLite WAL mode")?;
        }
        self.migrator()
            .run(&self.pool)
            .await
            .context("cannot apply state migrations")?;
        Ok(())
    }

    /// Reachable and fully migrated, for `/readyz`.
    pub async fn check_ready(&self) -> Result<(), String> {
        let latest = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("select max(version) from _sqlx_migrations where success = true")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| format!("unreachable or not migrated: {e}"))?;
        match applied {
            Some(v) if v >= latest => Ok(()),
            Some(v) => Err(format!("migrations pending: at {v}, latest is {latest}")),
            None => Err("not migrated: run `ltv-tagger migrate`".into()),
        }
    }

    /// Commits the inbox row and its job in one transaction.
    pub async fn enqueue(&self, ev: &NewEvent, now: i64) -> Result<Enqueued, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inbox_id: Option<i64> = sqlx::query_scalar(
            "insert into inbox (source, dedupe_key, ticket_id, event_type, body, received_at)
             values ($1, $2, $3, $4, $5, $6)
             on conflict (source, dedupe_key) do nothing
             returning id",
        )
        .bind(ev.source.as_str())
        .bind(&ev.dedupe_key)
        .bind(ev.ticket_id.to_string())
        .bind(&ev.event_type)
        .bind(&ev.body)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(inbox_id) = inbox_id else {
            tx.rollback().await?;
            return Ok(Enqueued::Duplicate);
        };
        let row = sqlx::query(
            "insert into job (source, ticket_id, requester_email, requester_id, ticket_tags,
                              event_count, state, attempts, run_at, created_at, updated_at)
             values ($1, $2, $3, $4, $5, 1, 'queued', 0, $6, $6, $6)
             on conflict (source, ticket_id) where state = 'queued'
             do update set requester_email = coalesce(excluded.requester_email, job.requester_email),
                           requester_id = coalesce(excluded.requester_id, job.requester_id),
                           ticket_tags = excluded.ticket_tags,
                           event_count = job.event_count + 1,
                           updated_at = excluded.updated_at
             returning id, event_count",
        )
        .bind(ev.source.as_str())
        .bind(ev.ticket_id.to_string())
        .bind(ev.requester_email.as_deref())
        .bind(ev.requester_id.as_deref())
        .bind(join_tags(&ev.ticket_tags))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let job_id: i64 = row.try_get("id")?;
        let event_count: i64 = row.try_get("event_count")?;
        sqlx::query("update inbox set job_id = $1 where id = $2")
            .bind(job_id)
            .bind(inbox_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Enqueued::Accepted {
            job_id,
            coalesced: event_count > 1,
        })
    }

    /// Leases up to `max` due jobs (waiting ones whose time has come, and running ones whose
    /// lease ran out because their worker died).
    pub async fn claim(
        &self,
        owner: &str,
        max: usize,
        lease: Duration,
        now: i64,
    ) -> Result<Vec<Job>, sqlx::Error> {
        match self.reclaim_expired(now).await {
            // A replica enqueued a job for that ticket meanwhile: the next round folds it.
            Err(e) if is_unique_violation(&e) => {}
            other => other?,
        }
        let lock = match self.backend {
            Backend::Postgres => "for update skip locked",
            Backend::Sqlite => "",
        };
        // Walks job_due_ix in run_at order and stops at the limit: the cost does not grow with
        // the backlog.
        let sql = format!(
            "update job set state = 'running', lease_owner = $1, lease_until = $2,
                            attempts = attempts + 1, updated_at = $3
             where id in (select j.id from job j
                          where j.state = 'queued' and j.run_at <= $3
                            -- one ticket at a time: its later events wait, coalesced, for the
                            -- running job to finish (one lookup and one write for all of them)
                            and not exists (select 1 from job r
                                            where r.source = j.source and r.ticket_id = j.ticket_id
                                              and r.state = 'running')
                          order by j.run_at limit $4 {lock})
             returning id, source, ticket_id, requester_email, requester_id, ticket_tags,
                       event_count, attempts, created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now + ms(lease))
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let source: String = row.try_get("source")?;
            let ticket: String = row.try_get("ticket_id")?;
            let (Some(source), Ok(ticket_id)) = (Source::parse(&source), TicketId::parse(&ticket))
            else {
                // Only this program writes these columns; a bad row is parked, not retried forever.
                self.park_corrupt(id, owner, now).await?;
                continue;
            };
            let tags: String = row.try_get("ticket_tags")?;
            jobs.push(Job {
                id,
                source,
                ticket_id,
                requester_email: row.try_get("requester_email")?,
                requester_id: row.try_get("requester_id")?,
                ticket_tags: split_tags(&tags),
                event_count: row.try_get("event_count")?,
                attempts: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(jobs)
    }

    /// Jobs whose worker stopped renewing their lease go back to the queue; one whose ticket
    /// already has a newer waiting job is folded into it (`merged`): that job covers the ticket.
    async fn reclaim_expired(&self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update job set state = 'merged', lease_owner = null, lease_until = null,
                            last_error = 'lease expired; superseded by a newer event for the same ticket',
                            updated_at = $1
             where state = 'running' and lease_until < $1
               and exists (select 1 from job q where q.source = job.source
                             and q.ticket_id = job.ticket_id and q.state = 'queued')",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "update job set state = 'queued', run_at = $1, lease_owner = null, lease_until = null,
                            last_error = coalesce(last_error, 'lease expired: its worker stopped'),
                            updated_at = $1
             where state = 'running' and lease_until < $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn park_corrupt(&self, id: i64, owner: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update job set state = 'dead', last_error = 'corrupt job row', lease_owner = null,
                            lease_until = null, updated_at = $3
             where id = $1 and lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extends a lease; `false` when the job is no longer ours (lease expired and taken over).
    pub async fn renew(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "update job set lease_until = $3, updated_at = $4
             where id = $1 and lease_owner = $2 and state = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(now + ms(lease))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a job and records its decision in one transaction. `false` when the lease was lost.
    pub async fn finish(
        &self,
        job: &Job,
        owner: &str,
        end: Final,
        audit: &AuditRecord,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let state = match end {
            Final::Done => "done",
            Final::Dead => "dead",
        };
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "update job set state = $3, lease_owner = null, lease_until = null,
                            last_error = $4, updated_at = $5
             where id = $1 and lease_owner = $2 and state = 'running'",
        )
        .bind(job.id)
        .bind(owner)
        .bind(state)
        .bind(match end {
            Final::Done => None,
            Final::Dead => audit.detail.as_deref(),
        })
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "insert into audit (job_id, source, ticket_id, email, ltv, orders, disputes,
                                tags_decided, tags_written, outcome, detail, attempts, event_count,
                                created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(job.id)
        .bind(job.source.as_str())
        .bind(job.ticket_id.to_string())
        .bind(audit.email.as_deref())
        .bind(audit.ltv.as_deref())
        .bind(audit.orders)
        .bind(audit.disputes)
        .bind(join_tags(&audit.tags_decided))
        .bind(join_tags(&audit.tags_written))
        .bind(&audit.outcome)
        .bind(audit.detail.as_deref())
        .bind(job.attempts)
        .bind(job.event_count)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Puts a job back in the queue to run at `run_at`. If a newer event for the same ticket is
    /// already waiting, this job is folded into it (state `merged`): that job will do the work.
    pub async fn retry_later(
        &self,
        id: i64,
        owner: &str,
        run_at: i64,
        error: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        self.requeue(id, Some(owner), run_at, Some(error), 0, now)
            .await
    }

    /// Gives a job back without counting the attempt (graceful shutdown).
    pub async fn release(&self, id: i64, owner: &str, now: i64) -> Result<(), sqlx::Error> {
        self.requeue(id, Some(owner), now, None, 1, now).await
    }

    async fn requeue(
        &self,
        id: i64,
        owner: Option<&str>,
        run_at: i64,
        error: Option<&str>,
        refund_attempts: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let owner_clause = if owner.is_some() {
            "and lease_owner = $6 and state = 'running'"
        } else {
            "and state = 'dead'"
        };
        let sql = format!(
            "update job set state = 'queued', run_at = $2, last_error = coalesce($3, last_error),
                            attempts = attempts - $4, lease_owner = null, lease_until = null,
                            updated_at = $5
             where id = $1 {owner_clause}"
        );
        let mut q = sqlx::query(&sql)
            .bind(id)
            .bind(run_at)
            .bind(error)
            .bind(refund_attempts)
            .bind(now);
        if let Some(owner) = owner {
            q = q.bind(owner);
        }
        match q.execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                sqlx::query(
                    "update job set state = 'merged', lease_owner = null, lease_until = null,
                                    last_error = 'superseded by a newer event for the same ticket',
                                    updated_at = $2
                     where id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Queues a dead-lettered job again (`ltv-tagger jobs retry`). `false` if it is not dead.
    pub async fn retry_dead(&self, id: i64, now: i64) -> Result<bool, sqlx::Error> {
        let dead: Option<String> = sqlx::query_scalar("select state from job where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if dead.as_deref() != Some("dead") {
            return Ok(false);
        }
        // A fresh horizon: the retry counts from now.
        sqlx::query("update job set attempts = 0, created_at = $2 where id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        self.requeue(id, None, now, None, 0, now).await?;
        Ok(true)
    }

    pub async fn dead_job_ids(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("select id from job where state = 'dead' order by id")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn list_jobs(&self, dead_only: bool, limit: i64) -> Result<Vec<JobRow>, sqlx::Error> {
        let filter = if dead_only {
            "where state = 'dead'"
        } else {
            "where state in ('queued', 'running', 'dead')"
        };
        let rows = sqlx::query(&format!(
            "select id, source, ticket_id, state, attempts, event_count, run_at, last_error,
                    created_at, updated_at
             from job {filter} order by id limit $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobRow {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    ticket_id: r.try_get("ticket_id")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    event_count: r.try_get("event_count")?,
                    run_at: r.try_get("run_at")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn queue_depth(&self) -> Result<QueueDepth, sqlx::Error> {
        let rows = sqlx::query("select state, count(*) as n from job group by state")
            .fetch_all(&self.pool)
            .await?;
        let mut d = QueueDepth::default();
        for r in rows {
            let state: String = r.try_get("state")?;
            let n: i64 = r.try_get("n")?;
            match state.as_str() {
                "queued" => d.queued = n,
                "running" => d.running = n,
                "dead" => d.dead = n,
                _ => {}
            }
        }
        Ok(d)
    }

    /// The audit log, newest last; `ticket` narrows it to one ticket.
    pub async fn audit(
        &self,
        ticket: Option<(Source, TicketId)>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let cols = "job_id, source, ticket_id, email, ltv, orders, disputes, tags_decided,
                    tags_written, outcome, detail, attempts, event_count, created_at";
        let rows = match ticket {
            Some((source, id)) => {
                sqlx::query(&format!(
                    "select {cols} from audit where source = $1 and ticket_id = $2 order by id limit $3"
                ))
                .bind(source.as_str())
                .bind(id.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "select {cols} from (select * from audit order by id desc limit $1) a order by id"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let decided: String = r.try_get("tags_decided")?;
                let written: String = r.try_get("tags_written")?;
                Ok(AuditRow {
                    job_id: r.try_get("job_id")?,
                    source: r.try_get("source")?,
                    ticket_id: r.try_get("ticket_id")?,
                    record: AuditRecord {
                        email: r.try_get("email")?,
                        ltv: r.try_get("ltv")?,
                        orders: r.try_get("orders")?,
                        disputes: r.try_get("disputes")?,
                        tags_decided: split_tags(&decided),
                        tags_written: split_tags(&written),
                        outcome: r.try_get("outcome")?,
                        detail: r.try_get("detail")?,
                    },
                    attempts: r.try_get("attempts")?,
                    event_count: r.try_get("event_count")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes finished jobs and inbox rows older than `retention` (the audit log is kept).
    pub async fn prune(&self, retention: Duration, now: i64) -> Result<u64, sqlx::Error> {
        let cutoff = now - ms(retention);
        let mut tx = self.pool.begin().await?;
        let a = sqlx::query(
            "delete from inbox where received_at < $1
               and (job_id is null or job_id in (select id from job where state in ('done', 'merged')))",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let b = sqlx::query(
            "delete from job where state in ('done', 'merged') and updated_at < $1
               and id not in (select job_id from inbox where job_id is not null)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(a.rows_affected() + b.rows_affected())
    }

    // ---- shared rate budgets --------------------------------------------------------------

    /// Creates the account's bucket (full) if it does not exist yet.
    pub async fn ensure_budget(
        &self,
        account: &str,
        capacity: f64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into rate_budget (account, tokens, refilled_at, paused_until, granted, updated_at)
             values ($1, $2, $3, 0, 0, $3)
             on conflict (account) do nothing",
        )
        .bind(account)
        .bind(capacity)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes one token from the account's bucket (refilled at `per_ms` tokens per millisecond up
    /// to `capacity`), atomically in one statement, so every worker of every replica shares it.
    pub async fn take_token(
        &self,
        account: &str,
        capacity: f64,
        per_ms: f64,
        now: i64,
    ) -> Result<TokenGrant, sqlx::Error> {
        // t = min(capacity, tokens + elapsed * per_ms), elapsed clamped at 0 against clock skew.
        let t = "(case when tokens + (case when $1 > refilled_at then $1 - refilled_at else 0 end) * $2 > $3
                       then $3
                       else tokens + (case when $1 > refilled_at then $1 - refilled_at else 0 end) * $2 end)";
        let sql = format!(
            "update rate_budget
             set tokens = (case when $1 >= paused_until and {t} >= 1 then {t} - 1 else {t} end),
                 granted = (case when $1 >= paused_until and {t} >= 1 then 1 else 0 end),
                 refilled_at = (case when $1 > refilled_at then $1 else refilled_at end),
                 updated_at = $1
             where account = $4
             returning tokens, granted, paused_until"
        );
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(per_ms)
            .bind(capacity)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            self.ensure_budget(account, capacity, now).await?;
            return Ok(TokenGrant::Wait(Duration::ZERO));
        };
        let granted: i64 = row.try_get("granted")?;
        if granted == 1 {
            return Ok(TokenGrant::Granted);
        }
        let tokens: f64 = row.try_get("tokens")?;
        let paused_until: i64 = row.try_get("paused_until")?;
        let refill_ms = if per_ms > 0.0 {
            ((1.0 - tokens).max(0.0) / per_ms).ceil()
        } else {
            1000.0
        };
        // Bounded, so a misconfigured rate never parks a worker for hours.
        let wait_ms = ((paused_until - now).max(0) as f64)
            .max(refill_ms)
            .clamp(1.0, 60_000.0);
        Ok(TokenGrant::Wait(Duration::from_millis(wait_ms as u64)))
    }

    /// The helpdesk said 429: nobody calls this account before `until`.
    pub async fn pause_budget(
        &self,
        account: &str,
        until: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update rate_budget
             set paused_until = (case when paused_until > $2 then paused_until else $2 end),
                 tokens = 0, refilled_at = $3, updated_at = $3
             where account = $1",
        )
        .bind(account)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The helpdesk told us how many calls it still allows: never believe we have more.
    pub async fn cap_budget(
        &self,
        account: &str,
        remaining: f64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update rate_budget set tokens = $2, updated_at = $3
             where account = $1 and tokens > $2",
        )
        .bind(account)
        .bind(remaining)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
