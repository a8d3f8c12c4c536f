//! The service's own database: the inbox, the job queue with its leases, dead letters, the audit
//! log, retention, and the rate budgets' rows.
//!
//! One `AnyPool` serves SQLite (embedded, one instance) and PostgreSQL (several replicas). The SQL
//! is written once in the dialect both accept (`$N` placeholders, `update … returning`, partial
//! unique indexes, `on conflict`); the only difference, `for update skip locked` on the claim, is
//! switched on the backend. Times are [`Millis`], taken from the caller so tests can move the
//! clock. This file holds the pool, migrations and readiness; each mechanism has a file:
//!
//! | file | mechanism |
//! |---|---|
//! | `inbox.rs` | commit an event and its job in one transaction, coalescing per ticket |
//! | `inbox_batch.rs` | the same for a whole batch of events: one transaction, three statements |
//! | `inbox_batch_pg.rs` | on PostgreSQL, the same in one function call (one round trip), each row written once |
//! | `batch_sql.rs` | those statements' text, in a few fixed shapes that stay prepared |
//! | `group_commit.rs` | the committer: events of concurrent webhooks in one transaction |
//! | `queue.rs` | claim due jobs under a lease; the [`LeasedJob`] handle (renew, finish, retry, release) |
//! | `queue_bulk.rs` | for bulk writes: ready jobs per helpdesk, a claim of untried ones, batch lease renewal |
//! | `reclaim.rs` | expired leases back to the queue; corrupt rows parked |
//! | `dead_letters.rs` | list and replay dead-lettered jobs |
//! | `audit.rs` | the decision recorded for every finished job |
//! | `notes.rs` | the tickets that already carry the service's internal note |
//! | `retention.rs` | pruning old rows, and the loop that does it |
//! | `checkpoint.rs` | SQLite: the log copied into the database file in the background, not in a commit |

mod audit;
mod batch_sql;
mod checkpoint;
mod db_clock;
mod dead_letters;
mod group_commit;
mod inbox;
mod inbox_batch;
mod inbox_batch_pg;
mod notes;
mod queue;
mod queue_bulk;
mod reclaim;
mod retention;

use std::str::FromStr;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::connect_error::{describe_db, diagnose_pool_timeout};

pub use audit::{AuditFilter, AuditRecord, AuditRow};
pub use checkpoint::checkpoint_periodically;
pub use dead_letters::{JobRow, QueueDepth};
pub use group_commit::{CommitError, GroupCommitSettings, GroupCommitter};
pub use inbox::{Enqueued, NewEvent};
pub use queue::{Final, Job, LeasedJob};
pub use retention::prune_periodically;

use crate::config::{redact_url_password, StateSettings};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

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
            .acquire_timeout(settings.connect_timeout);
        let pool = match backend {
            // The connection is in-process: a ping before every acquire only costs a hand-off
            // to its thread. `serve` checkpoints in the background (`checkpoint.rs`); the
            // writer's own checkpoint is the backstop.
            Backend::Sqlite => pool.test_before_acquire(false).after_connect(|conn, _| {
                Box::pin(async move {
                    let sql = format!(
                        "pragma wal_autocheckpoint = {}",
                        checkpoint::WRITER_AUTOCHECKPOINT_PAGES
                    );
                    sqlx::query(&sql).execute(conn).await.map(drop)
                })
            }),
            Backend::Postgres => pool,
        };
        let pool = pool.connect_lazy_with(options);
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
        let applied: Option<i64> = match sqlx::query_scalar(
            "select max(version) from _sqlx_migrations where success = true",
        )
        .fetch_one(&self.pool)
        .await
        {
            Ok(v) => v,
            Err(e) => {
                let e = self.explain(e).await;
                return Err(format!("unreachable or not migrated: {}", describe_db(&e)));
            }
        };
        match applied {
            Some(v) if v >= latest => Ok(()),
            Some(v) => Err(format!("migrations pending: at {v}, latest is {latest}")),
            None => Err("not migrated: run `ltv-tagger migrate`".into()),
        }
    }
}

impl StateStore {
    /// "pool timed out" hides why: one direct connection says (refused, DNS, TLS, auth).
    pub async fn explain(&self, e: sqlx::Error) -> sqlx::Error {
        match e {
            sqlx::Error::PoolTimedOut => {
                diagnose_pool_timeout(&self.pool, std::time::Duration::from_secs(3)).await
            }
            e => e,
        }
    }
}

/// Tags as one text column: space separated (a tag never holds a space).
fn join_tags<T: AsRef<str>>(tags: &[T]) -> String {
    tags.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
}

/// The event's requester as the job's two columns: `(requester_email, requester_id)`.
fn requester_columns(ev: &NewEvent) -> (Option<&str>, Option<&str>) {
    match &ev.requester {
        Some(crate::domain::Requester::Email(e)) => (Some(e.as_str()), None),
        Some(crate::domain::Requester::Id(id)) => (None, Some(id.as_str())),
        None => (None, None),
    }
}

fn split_tags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
