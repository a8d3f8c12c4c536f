//! The shop's order database: one read-only SQL query per customer, cached.
//!
//! Contract with the operator, who writes `orders.query`:
//! - `:email` marks where the customer's email goes (as many times as needed). It is rewritten into
//!   the driver's own placeholder syntax by [`bind_email_placeholders`]; `:email` inside quotes,
//!   identifiers, comments, casts (`::email`) or longer names (`:emails`) is left alone.
//! - The first row returned describes the customer (add an `order by` if several rows can come
//!   back); no row means an unknown customer (`Ok(None)`). The default aggregate query always
//!   returns one row, so with it an unknown customer reads as zeros.
//! - Columns, matched by name without regard to case: `ltv` (required; numeric/decimal, any integer,
//!   real/double, or on SQLite a decimal written as text; NULL means 0), `orders` and `disputes`
//!   (optional whole numbers of any of those types; missing or NULL means 0).
//! - Money becomes a [`Decimal`] without float arithmetic: a REAL/DOUBLE value is converted through
//!   its shortest decimal spelling, so a stored `19.99` reads as exactly `19.99`.
//!
//! Contract with the service: [`OrderDb::connect_lazy`] connects nothing, so the service starts while
//! the order database is down. Sessions are read-only where the driver allows it (Postgres
//! `default_transaction_read_only`, MySQL/MariaDB `set session transaction read only`, SQLite opened
//! read-only, the file must exist). Every lookup fails within `query_timeout`, never hangs.
//! Answers (unknown customers included, errors excluded) are cached for `cache_ttl`, and concurrent
//! lookups of one email share one query.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use prometheus::Histogram;
use rust_decimal::Decimal;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlRow};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqliteRow};
use sqlx::{
    Column, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Statement, Type,
    TypeInfo, ValueRef,
};

/// The address `check_query` looks up: the `.invalid` TLD never belongs to a customer.
const CHECK_EMAIL: &str = "nobody@example.invalid";
const EMAIL: &[u8] = b":email";

pub use crate::domain::CustomerStats;

/// The driver behind `orders.url` (MariaDB uses the MySQL one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

impl Backend {
    /// Also the canonical URL scheme handed to the driver.
    fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration mistake, found before any connection is made.
#[derive(Debug, thiserror::Error)]
pub enum OrdersConfigError {
    #[error("orders.url: expected a URL starting with postgres://, postgresql://, mysql://, mariadb:// or sqlite://")]
    NotAUrl,
    #[error("orders.url: unsupported scheme `{0}://`; expected postgres://, postgresql://, mysql://, mariadb:// or sqlite://")]
    UnsupportedScheme(String),
    #[error("orders.url: not a valid {backend} URL: {reason}")]
    InvalidUrl { backend: Backend, reason: String },
    #[error("orders.query: no :email placeholder outside quotes and comments; write :email where the customer's email goes")]
    NoEmailPlaceholder,
    #[error("orders.max_connections: must be at least 1")]
    ZeroMaxConnections,
    #[error("orders.query_timeout: must be more than 0s")]
    ZeroQueryTimeout,
}

/// A lookup that failed. Cheap to clone (the cache hands one error to every waiting caller).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrdersError {
    #[error("{backend} order database unavailable: {cause}")]
    Unavailable {
        backend: Backend,
        cause: Arc<sqlx::Error>,
    },
    #[error("{backend} order database did not answer within {after:?}")]
    Timeout { backend: Backend, after: Duration },
    #[error("{backend} order query failed: {cause}")]
    Query {
        backend: Backend,
        cause: Arc<sqlx::Error>,
    },
    #[error("orders.query: the {backend} result has no `{column}` column")]
    MissingColumn {
        backend: Backend,
        column: &'static str,
    },
    #[error("orders.query: the {backend} result column `{column}` has type {found}; expected numeric/decimal, an integer or real/double (cast it)")]
    ColumnType {
        backend: Backend,
        column: &'static str,
        found: String,
    },
    #[error("orders.query: the {backend} result column `{column}` cannot be read: {reason}")]
    ColumnValue {
        backend: Backend,
        column: &'static str,
        reason: String,
    },
}

/// The `[orders]` settings.
pub struct OrderDbOptions {
    pub url: String,
    pub query: String,
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
    pub max_connections: u32,
    pub query_timeout: Duration,
}

/// The shop's order database. Cheap to clone: pools, cache and histogram are shared handles.
#[derive(Clone)]
pub struct OrderDb {
    pool: Pool,
    sql: Arc<str>,
    binds: usize,
    query_timeout: Duration,
    cache: Option<Cache<String, Option<CustomerStats>>>,
    latency: Option<Histogram>,
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

enum ConnectOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl OrderDb {
    /// Checks `orders.url` and `orders.query` without connecting (and without a Tokio runtime).
    /// `max_connections` and `query_timeout` are left to the caller's own checks.
    pub fn check_options(opts: &OrderDbOptions) -> Result<(), OrdersConfigError> {
        let options = connect_options(opts)?;
        bind_email_placeholders(&opts.query, options.backend()).map(drop)
    }

    /// Validates options and creates a LAZY pool (no connection is made here; the service must start
    /// even when the order DB is down). Must be called inside a Tokio runtime.
    pub fn connect_lazy(opts: &OrderDbOptions) -> Result<Self, OrdersConfigError> {
        if opts.max_connections == 0 {
            return Err(OrdersConfigError::ZeroMaxConnections);
        }
        if opts.query_timeout.is_zero() {
            return Err(OrdersConfigError::ZeroQueryTimeout);
        }
        let options = connect_options(opts)?;
        let (sql, binds) = bind_email_placeholders(&opts.query, options.backend())?;
        let pool = match options {
            ConnectOptions::Postgres(o) => Pool::Postgres(pool_options(opts).connect_lazy_with(o)),
            ConnectOptions::MySql(o) => Pool::MySql(
                pool_options::<sqlx::MySql>(opts)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("set session transaction read only").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(o),
            ),
            ConnectOptions::Sqlite(o) => Pool::Sqlite(pool_options(opts).connect_lazy_with(o)),
        };
        let cache = (!opts.cache_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(opts.cache_capacity)
                .time_to_live(opts.cache_ttl)
                .build()
        });
        Ok(Self {
            pool,
            sql: sql.into(),
            binds,
            query_timeout: opts.query_timeout,
            cache,
            latency: None,
        })
    }

    /// Observe the latency (seconds) of every lookup that reached the database (not cache hits,
    /// not `ping`/`check_query`), failed and timed-out ones included.
    pub fn with_latency_histogram(mut self, h: Histogram) -> Self {
        self.latency = Some(h);
        self
    }

    /// `email` is already normalised (trimmed, lower-cased) by the caller. None = unknown customer.
    pub async fn lookup(&self, email: &str) -> Result<Option<CustomerStats>, OrdersError> {
        match &self.cache {
            Some(cache) => cache
                .try_get_with_by_ref(email, self.query(email))
                .await
                .map_err(Arc::unwrap_or_clone),
            None => self.query(email).await,
        }
    }

    /// A `select 1` round-trip, for /readyz.
    pub async fn ping(&self) -> Result<(), OrdersError> {
        self.timed(async {
            match &self.pool {
                Pool::Postgres(p) => select_one(p, Backend::Postgres).await,
                Pool::MySql(p) => select_one(p, Backend::MySql).await,
                Pool::Sqlite(p) => select_one(p, Backend::Sqlite).await,
            }
        })
        .await
    }

    /// Checks that the query has an `ltv` column (even when it returns no row), then runs it for a
    /// dummy address and reads the row if one comes back (the default query always returns one),
    /// which checks the column types. Used by `check-config`.
    pub async fn check_query(&self) -> Result<(), OrdersError> {
        let backend = self.pool.backend();
        self.timed(async {
            let columns = match &self.pool {
                Pool::Postgres(p) => column_names(p, backend, &self.sql).await?,
                Pool::MySql(p) => column_names(p, backend, &self.sql).await?,
                Pool::Sqlite(p) => column_names(p, backend, &self.sql).await?,
            };
            if !columns.iter().any(|c| c.eq_ignore_ascii_case("ltv")) {
                return Err(OrdersError::MissingColumn {
                    backend,
                    column: "ltv",
                });
            }
            self.fetch(CHECK_EMAIL).await.map(drop)
        })
        .await
    }

    /// "postgres" | "mysql" (MySQL and MariaDB) | "sqlite".
    pub fn backend(&self) -> &'static str {
        self.pool.backend().as_str()
    }

    async fn query(&self, email: &str) -> Result<Option<CustomerStats>, OrdersError> {
        let started = Instant::now();
        let result = self.timed(self.fetch(email)).await;
        if let Some(latency) = &self.latency {
            latency.observe(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn fetch(&self, email: &str) -> Result<Option<CustomerStats>, OrdersError> {
        let (sql, binds) = (&*self.sql, self.binds);
        match &self.pool {
            Pool::Postgres(p) => {
                fetch_stats(p, Backend::Postgres, sql, email, binds, pg_number).await
            }
            Pool::MySql(p) => fetch_stats(p, Backend::MySql, sql, email, binds, mysql_number).await,
            Pool::Sqlite(p) => {
                fetch_stats(p, Backend::Sqlite, sql, email, binds, sqlite_number).await
            }
        }
    }

    async fn timed<T>(
        &self,
        work: impl Future<Output = Result<T, OrdersError>>,
    ) -> Result<T, OrdersError> {
        tokio::time::timeout(self.query_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(OrdersError::Timeout {
                    backend: self.pool.backend(),
                    after: self.query_timeout,
                })
            })
    }
}

/// Shows the backend only: the pools' options hold the database password.
impl fmt::Debug for OrderDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderDb")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Pool {
    fn backend(&self) -> Backend {
        match self {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }
}

impl ConnectOptions {
    fn backend(&self) -> Backend {
        match self {
            ConnectOptions::Postgres(_) => Backend::Postgres,
            ConnectOptions::MySql(_) => Backend::MySql,
            ConnectOptions::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Parses `orders.url` into read-only driver options (`mariadb://` and `postgresql://` become the
/// driver's own scheme).
fn connect_options(opts: &OrderDbOptions) -> Result<ConnectOptions, OrdersConfigError> {
    let (scheme, rest) = opts
        .url
        .trim()
        .split_once("://")
        .ok_or(OrdersConfigError::NotAUrl)?;
    let backend = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Backend::Postgres,
        "mysql" | "mariadb" => Backend::MySql,
        "sqlite" => Backend::Sqlite,
        _ => return Err(OrdersConfigError::UnsupportedScheme(scheme.to_owned())),
    };
    let url = format!("{backend}://{rest}");
    let invalid = |e: sqlx::Error| OrdersConfigError::InvalidUrl {
        backend,
        reason: e.to_string(),
    };
    Ok(match backend {
        Backend::Postgres => {
            // The server also abandons a query the client stopped waiting for.
            let statement_timeout = format!("{}ms", opts.query_timeout.as_millis());
            ConnectOptions::Postgres(PgConnectOptions::from_str(&url).map_err(invalid)?.options([
                ("default_transaction_read_only", "on"),
                ("statement_timeout", statement_timeout.as_str()),
            ]))
        }
        Backend::MySql => {
            ConnectOptions::MySql(MySqlConnectOptions::from_str(&url).map_err(invalid)?)
        }
        Backend::Sqlite if matches!(rest.split('?').next(), Some("" | ":memory:")) => {
            return Err(OrdersConfigError::InvalidUrl {
                backend,
                reason: "needs the path of an existing database file".to_owned(),
            })
        }
        Backend::Sqlite => ConnectOptions::Sqlite(
            SqliteConnectOptions::from_str(&url)
                .map_err(invalid)?
                .read_only(true)
                .create_if_missing(false),
        ),
    })
}

fn pool_options<DB: Database>(opts: &OrderDbOptions) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(opts.query_timeout)
}

/// Rewrite `:email` into the driver's placeholder syntax; returns (sql, number_of_bind_parameters_to_bind).
///
/// Postgres gets `$1` and SQLite `?1` at every occurrence (bind once); MySQL gets `?` at every
/// occurrence (bind the email once per occurrence). Untouched: quoted strings ('…', with '' and, on
/// MySQL, backslash escapes), "…" and `…` identifiers, `--` comments (`-- ` and `#` on MySQL), `/* */`
/// comments (nested on Postgres), casts such as `x::email`, and longer names such as `:emails`.
pub fn bind_email_placeholders(
    query: &str,
    backend: Backend,
) -> Result<(String, usize), OrdersConfigError> {
    let offsets = email_offsets(query.as_bytes(), backend);
    if offsets.is_empty() {
        return Err(OrdersConfigError::NoEmailPlaceholder);
    }
    let placeholder = match backend {
        Backend::Postgres => "$1",
        Backend::MySql => "?",
        Backend::Sqlite => "?1",
    };
    let mut sql = String::with_capacity(query.len());
    let mut copied = 0;
    // Every offset and end is next to an ASCII byte, so each slice is on a char boundary.
    for &at in &offsets {
        sql.push_str(&query[copied..at]);
        sql.push_str(placeholder);
        copied = at + EMAIL.len();
    }
    sql.push_str(&query[copied..]);
    let binds = match backend {
        Backend::MySql => offsets.len(),
        Backend::Postgres | Backend::Sqlite => 1,
    };
    Ok((sql, binds))
}

/// Byte offsets of the `:email` placeholders outside quotes and comments.
fn email_offsets(sql: &[u8], backend: Backend) -> Vec<usize> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        let next = sql.get(i + 1).copied();
        i = match (sql[i], next) {
            (quote @ (b'\'' | b'"' | b'`'), _) => skip_quoted(sql, i, quote, backend),
            (b'-', Some(b'-')) if starts_line_comment(sql, i, backend) => skip_line(sql, i),
            (b'#', _) if backend == Backend::MySql => skip_line(sql, i),
            (b'/', Some(b'*')) => skip_block_comment(sql, i, backend),
            (b':', Some(b':')) => i + 2,
            (b':', _) if is_email_placeholder(sql, i) => {
                found.push(i);
                i + EMAIL.len()
            }
            _ => i + 1,
        };
    }
    found
}

fn is_email_placeholder(sql: &[u8], at: usize) -> bool {
    let continues_name =
        |c: &u8| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$' || !c.is_ascii();
    sql[at..].starts_with(EMAIL) && !sql.get(at + EMAIL.len()).is_some_and(continues_name)
}

/// The offset just past the quoted text opening at `start` (or the end, if it never closes).
fn skip_quoted(sql: &[u8], start: usize, quote: u8, backend: Backend) -> usize {
    let backslash_escapes = backend == Backend::MySql && quote != b'`';
    let mut i = start + 1;
    while i < sql.len() {
        match sql[i] {
            b'\\' if backslash_escapes => i += 2,
            c if c == quote && sql.get(i + 1) == Some(&quote) => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    sql.len()
}

/// `--` at `at` opens a comment, except on MySQL when no whitespace follows (`x--1` is arithmetic).
fn starts_line_comment(sql: &[u8], at: usize, backend: Backend) -> bool {
    backend != Backend::MySql || sql.get(at + 2).map_or(true, u8::is_ascii_whitespace)
}

fn skip_line(sql: &[u8], start: usize) -> usize {
    sql[start..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(sql.len(), |n| start + n + 1)
}

fn skip_block_comment(sql: &[u8], start: usize, backend: Backend) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < sql.len() {
        if sql[i..].starts_with(b"/*") && (depth == 0 || backend == Backend::Postgres) {
            depth += 1;
            i += 2;
        } else if sql[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    sql.len()
}

async fn acquire<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
) -> Result<PoolConnection<DB>, OrdersError> {
    pool.acquire().await.map_err(|e| OrdersError::Unavailable {
        backend,
        cause: Arc::new(e),
    })
}

/// An error from a statement on an acquired connection: the database's own refusal is a query
/// error, anything else (I/O, protocol) means the database went away.
fn statement_error(backend: Backend, e: sqlx::Error) -> OrdersError {
    let cause = Arc::new(e);
    match *cause {
        sqlx::Error::Database(_) => OrdersError::Query { backend, cause },
        _ => OrdersError::Unavailable { backend, cause },
    }
}

async fn select_one<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
) -> Result<(), OrdersError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut conn = acquire(pool, backend).await?;
    conn.execute("select 1")
        .await
        .map(drop)
        .map_err(|e| statement_error(backend, e))
}

async fn column_names<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
    sql: &str,
) -> Result<Vec<String>, OrdersError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut conn = acquire(pool, backend).await?;
    let statement = conn
        .prepare(sql)
        .await
        .map_err(|e| statement_error(backend, e))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect())
}

/// Reads a non-NULL value whose runtime type is `type_name` as a decimal:
/// None when the type is not a number, Some(Err(reason)) when the value is not usable.
type NumberReader<R> = fn(&R, usize, &str) -> Option<Result<Decimal, String>>;

async fn fetch_stats<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
    sql: &str,
    email: &str,
    binds: usize,
    number: NumberReader<DB::Row>,
) -> Result<Option<CustomerStats>, OrdersError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut conn = acquire(pool, backend).await?;
    let mut query = sqlx::query(sql);
    for _ in 0..binds {
        query = query.bind(email);
    }
    let row = query
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| statement_error(backend, e))?;
    row.map(|row| stats_from_row(&row, backend, number))
        .transpose()
}

fn stats_from_row<R: Row>(
    row: &R,
    backend: Backend,
    number: NumberReader<R>,
) -> Result<CustomerStats, OrdersError>
where
    usize: ColumnIndex<R>,
{
    let find = |name: &str| {
        row.columns()
            .iter()
            .position(|c| c.name().eq_ignore_ascii_case(name))
    };
    let read = |index: usize, column: &'static str| -> Result<Decimal, OrdersError> {
        let value_error = |reason| OrdersError::ColumnValue {
            backend,
            column,
            reason,
        };
        let raw = row
            .try_get_raw(index)
            .map_err(|e| value_error(e.to_string()))?;
        if raw.is_null() {
            return Ok(Decimal::ZERO);
        }
        let found = raw.type_info().name().to_owned();
        match number(row, index, &found) {
            Some(value) => value.map_err(value_error),
            None => Err(OrdersError::ColumnType {
                backend,
                column,
                found,
            }),
        }
    };
    let count = |column: &'static str| -> Result<i64, OrdersError> {
        let Some(index) = find(column) else {
            return Ok(0);
        };
        let n = read(index, column)?;
        match i64::try_from(n) {
            Ok(whole) if n.fract().is_zero() => Ok(whole),
            _ => Err(OrdersError::ColumnValue {
                backend,
                column,
                reason: format!("{n} is not a whole number"),
            }),
        }
    };
    let ltv = find("ltv").ok_or(OrdersError::MissingColumn {
        backend,
        column: "ltv",
    })?;
    Ok(CustomerStats {
        ltv: read(ltv, "ltv")?,
        orders: count("orders")?,
        disputes: count("disputes")?,
    })
}

fn get<'r, R: Row, T>(row: &'r R, index: usize) -> Result<T, String>
where
    T: Decode<'r, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    row.try_get(index).map_err(|e| e.to_string())
}

/// A float becomes the decimal its shortest round-trip spelling names (19.99 → 19.99), no arithmetic.
fn float_to_decimal(shortest: String) -> Result<Decimal, String> {
    Decimal::from_str(&shortest).map_err(|e| format!("{shortest} is not a decimal amount: {e}"))
}

fn pg_number(row: &PgRow, index: usize, type_name: &str) -> Option<Result<Decimal, String>> {
    Some(match type_name {
        "NUMERIC" => get(row, index),
        "INT2" => get::<_, i16>(row, index).map(Decimal::from),
        "INT4" => get::<_, i32>(row, index).map(Decimal::from),
        "INT8" => get::<_, i64>(row, index).map(Decimal::from),
        "FLOAT4" => get::<_, f32>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        "FLOAT8" => get::<_, f64>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        _ => return None,
    })
}

/// MySQL/MariaDB: `count` is BIGINT, `sum` of anything exact is DECIMAL.
fn mysql_number(row: &MySqlRow, index: usize, type_name: &str) -> Option<Result<Decimal, String>> {
    Some(match type_name {
        "DECIMAL" => get(row, index),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            get::<_, i64>(row, index).map(Decimal::from)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" => get::<_, u64>(row, index).map(Decimal::from),
        "FLOAT" => get::<_, f32>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        "DOUBLE" => get::<_, f64>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        _ => return None,
    })
}

/// SQLite types values, not columns: `type_name` is the value's own storage class.
fn sqlite_number(
    row: &SqliteRow,
    index: usize,
    type_name: &str,
) -> Option<Result<Decimal, String>> {
    Some(match type_name {
        "INTEGER" => get::<_, i64>(row, index).map(Decimal::from),
        "REAL" => get::<_, f64>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        "TEXT" => get::<_, String>(row, index).and_then(|text| {
            Decimal::from_str(text.trim())
                .map_err(|_| format!("text {text:?} is not a decimal number"))
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `[orders].query` from config/default.toml.
    const DEFAULT_QUERY: &str = "
select coalesce(sum(total - refunded), 0) as ltv, count(*) as orders,
       (select count(*) from chargebacks c where lower(c.email) = :email) as disputes
from orders where lower(email) = :email and status = 'paid'
";
    /// A query that returns no row for an unknown customer.
    const GROUPED_QUERY: &str = "select sum(total - refunded) as ltv from orders \
                                 where lower(email) = :email group by lower(email)";

    /// A tiny shop, in SQL all three backends accept.
    const SHOP: &str = "
create table orders (email varchar(320) not null, status varchar(20) not null,
                     total decimal(12,2) not null, refunded decimal(12,2) not null);
create table chargebacks (email varchar(320) not null, amount decimal(12,2) not null);
insert into orders (email, status, total, refunded) values
    ('ada@example.com', 'paid', 1500.00, 0.00),
    ('Ada@Example.com', 'paid', 1200.50, 200.50),
    ('ada@example.com', 'cancelled', 999.99, 0.00),
    ('bob@example.com', 'pending', 80.00, 0.00),
    ('eve@example.com', 'paid', 19.99, 0.00);
insert into chargebacks (email, amount) values ('eve@example.com', 19.99), ('EVE@example.com', 19.99);
";

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal literal")
    }

    fn stats(ltv: &str, orders: i64, disputes: i64) -> Option<CustomerStats> {
        Some(CustomerStats {
            ltv: dec(ltv),
            orders,
            disputes,
        })
    }

    fn options(url: &str, query: &str) -> OrderDbOptions {
        OrderDbOptions {
            url: url.to_owned(),
            query: query.to_owned(),
            cache_ttl: Duration::ZERO,
            cache_capacity: 1000,
            max_connections: 2,
            query_timeout: Duration::from_secs(5),
        }
    }

    fn histogram() -> Histogram {
        Histogram::with_opts(prometheus::HistogramOpts::new(
            "order_query_seconds",
            "test",
        ))
        .expect("histogram")
    }

    async fn exec(pool: &Pool, sql: &str) {
        match pool {
            Pool::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Pool::MySql(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Pool::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn sqlite_writer(path: &std::path::Path) -> Pool {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Pool::Sqlite(
            SqlitePool::connect_with(options)
                .await
                .expect("sqlite file"),
        )
    }

    /// A fresh database holding SHOP: its own Postgres/MariaDB database, or a SQLite file.
    struct Shop {
        url: String,
        writer: Pool,
        server: Option<(Pool, String)>,
        _dir: Option<tempfile::TempDir>,
    }

    impl Shop {
        async fn new(backend: Backend) -> Shop {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "ltv_orders_test_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let shop = match backend {
                Backend::Postgres => {
                    let admin = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
                        .await
                        .expect("local PostgreSQL");
                    let admin = Pool::Postgres(admin);
                    exec(&admin, &format!("create database {name}")).await;
                    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                    let writer = Pool::Postgres(PgPool::connect(&url).await.expect("new db"));
                    Shop {
                        url,
                        writer,
                        server: Some((admin, name)),
                        _dir: None,
                    }
                }
                Backend::MySql => {
                    let admin = MySqlPool::connect("mysql://root@127.0.0.1:3306")
                        .await
                        .expect("local MariaDB");
                    let admin = Pool::MySql(admin);
                    exec(&admin, &format!("create database {name}")).await;
                    let url = format!("mysql://root@127.0.0.1:3306/{name}");
                    let writer = Pool::MySql(MySqlPool::connect(&url).await.expect("new db"));
                    Shop {
                        url,
                        writer,
                        server: Some((admin, name)),
                        _dir: None,
                    }
                }
                Backend::Sqlite => {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("shop.db");
                    Shop {
                        url: format!("sqlite://{}", path.display()),
                        writer: sqlite_writer(&path).await,
                        server: None,
                        _dir: Some(dir),
                    }
                }
            };
            shop.exec(SHOP).await;
            shop
        }

        async fn exec(&self, sql: &str) {
            exec(&self.writer, sql).await;
        }

        fn order_db(&self, query: &str) -> OrderDb {
            OrderDb::connect_lazy(&options(&self.url, query)).expect("valid options")
        }

        async fn drop_database(self) {
            if let Some((admin, name)) = &self.server {
                let drop = match admin {
                    Pool::Postgres(_) => format!("drop database {name} with (force)"),
                    _ => format!("drop database {name}"),
                };
                exec(admin, &drop).await;
            }
        }
    }

    async fn default_query_gives_exact_net_ltv_orders_and_disputes(backend: Backend) {
        let shop = Shop::new(backend).await;
        let db = shop.order_db(DEFAULT_QUERY);
        assert_eq!(db.backend(), backend.as_str());
        db.ping().await.expect("ping");
        db.check_query().await.expect("check_query");
        // 1500.00 + 1200.50 - 200.50; the cancelled order does not count.
        assert_eq!(
            db.lookup("ada@example.com").await.unwrap(),
            stats("2500.00", 2, 0)
        );
        assert_eq!(
            db.lookup("eve@example.com").await.unwrap(),
            stats("19.99", 1, 2)
        );
        // No paid order: the coalesce gives 0, and the aggregate still returns a row.
        assert_eq!(
            db.lookup("bob@example.com").await.unwrap(),
            stats("0", 0, 0)
        );
        assert_eq!(
            db.lookup("nobody@example.com").await.unwrap(),
            stats("0", 0, 0)
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn default_query_gives_exact_net_ltv_orders_and_disputes_on_postgres() {
        default_query_gives_exact_net_ltv_orders_and_disputes(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn default_query_gives_exact_net_ltv_orders_and_disputes_on_mysql() {
        default_query_gives_exact_net_ltv_orders_and_disputes(Backend::MySql).await;
    }

    #[tokio::test]
    async fn default_query_gives_exact_net_ltv_orders_and_disputes_on_sqlite() {
        default_query_gives_exact_net_ltv_orders_and_disputes(Backend::Sqlite).await;
    }

    async fn unknown_customer_is_none_when_the_query_returns_no_row(backend: Backend) {
        let shop = Shop::new(backend).await;
        let db = shop.order_db(GROUPED_QUERY);
        db.check_query().await.expect("check_query without a row");
        assert_eq!(db.lookup("nobody@example.com").await.unwrap(), None);
        assert_eq!(
            db.lookup("bob@example.com").await.unwrap(),
            stats("80.00", 0, 0)
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn unknown_customer_is_none_when_the_query_returns_no_row_on_postgres() {
        unknown_customer_is_none_when_the_query_returns_no_row(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn unknown_customer_is_none_when_the_query_returns_no_row_on_mysql() {
        unknown_customer_is_none_when_the_query_returns_no_row(Backend::MySql).await;
    }

    #[tokio::test]
    async fn unknown_customer_is_none_when_the_query_returns_no_row_on_sqlite() {
        unknown_customer_is_none_when_the_query_returns_no_row(Backend::Sqlite).await;
    }

    /// Each `(ltv expression, expected ltv)`; `orders` is `sum(1)` (DECIMAL on MySQL).
    async fn ltv_columns_of_every_numeric_type_are_exact(backend: Backend, cases: &[(&str, &str)]) {
        let shop = Shop::new(backend).await;
        for (expression, expected) in cases {
            let query = format!(
                "select {expression} as LTV, sum(1) as orders from orders where lower(email) = :email"
            );
            let found = shop.order_db(&query).lookup("eve@example.com").await;
            assert_eq!(found.unwrap(), stats(expected, 1, 0), "ltv = {expression}");
        }
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn integer_real_and_null_ltv_columns_are_exact_decimals_on_postgres() {
        let cases = [
            ("42", "42"),
            ("42::int2", "42"),
            ("4200000000::int8", "4200000000"),
            ("19.99::float8", "19.99"),
            ("19.99::float4", "19.99"),
            ("null", "0"),
        ];
        ltv_columns_of_every_numeric_type_are_exact(Backend::Postgres, &cases).await;
    }

    #[tokio::test]
    async fn integer_real_and_null_ltv_columns_are_exact_decimals_on_mysql() {
        let cases = [
            ("42", "42"),
            ("cast(42 as unsigned)", "42"),
            ("19.99e0", "19.99"),
            ("cast(19.99 as float)", "19.99"),
            ("null", "0"),
        ];
        ltv_columns_of_every_numeric_type_are_exact(Backend::MySql, &cases).await;
    }

    #[tokio::test]
    async fn integer_real_text_and_null_ltv_values_are_exact_decimals_on_sqlite() {
        let cases = [
            ("42", "42"),
            ("19.99", "19.99"),
            ("'19.99'", "19.99"),
            ("null", "0"),
        ];
        ltv_columns_of_every_numeric_type_are_exact(Backend::Sqlite, &cases).await;
    }

    async fn session_is_read_only(backend: Backend, write: &str) {
        let shop = Shop::new(backend).await;
        let writing = shop.order_db(write).lookup("ada@example.com").await;
        assert!(
            matches!(writing, Err(OrdersError::Query { .. })),
            "{writing:?}"
        );
        let ada = shop.order_db(DEFAULT_QUERY).lookup("ada@example.com").await;
        assert_eq!(ada.unwrap(), stats("2500.00", 2, 0));
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn session_is_read_only_on_postgres() {
        let write =
            "update orders set total = 0 where lower(email) = :email returning total as ltv";
        session_is_read_only(Backend::Postgres, write).await;
    }

    #[tokio::test]
    async fn session_is_read_only_on_mysql() {
        let write = "update orders set total = 0 where lower(email) = :email";
        session_is_read_only(Backend::MySql, write).await;
    }

    #[tokio::test]
    async fn session_is_read_only_on_sqlite() {
        let write =
            "update orders set total = 0 where lower(email) = :email returning total as ltv";
        session_is_read_only(Backend::Sqlite, write).await;
    }

    async fn lookup_and_ping_fail_fast_when_the_database_is_down(url: &str) {
        let db = OrderDb::connect_lazy(&OrderDbOptions {
            query_timeout: Duration::from_millis(300),
            ..options(url, DEFAULT_QUERY)
        })
        .expect("a lazy pool connects nothing");
        let started = Instant::now();
        let lookup = db.lookup("ada@example.com").await;
        assert!(
            matches!(
                lookup,
                Err(OrdersError::Unavailable { .. } | OrdersError::Timeout { .. })
            ),
            "{lookup:?}"
        );
        assert!(db.ping().await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn lookup_and_ping_fail_fast_when_the_database_is_down_on_postgres() {
        lookup_and_ping_fail_fast_when_the_database_is_down("postgres://postgres@127.0.0.1:1/shop")
            .await;
    }

    #[tokio::test]
    async fn lookup_and_ping_fail_fast_when_the_database_is_down_on_mysql() {
        lookup_and_ping_fail_fast_when_the_database_is_down("mariadb://root@127.0.0.1:1/shop")
            .await;
    }

    #[tokio::test]
    async fn text_ltv_column_is_an_error_naming_the_column_and_its_type_on_postgres() {
        let shop = Shop::new(Backend::Postgres).await;
        let db = shop.order_db("select email as ltv from orders where email = :email");
        let error = db.lookup("eve@example.com").await.unwrap_err();
        assert!(
            matches!(&error, OrdersError::ColumnType { column: "ltv", found, .. } if found == "VARCHAR"),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("`ltv` has type VARCHAR"),
            "{error}"
        );
        assert!(
            db.check_query().await.is_ok(),
            "no row for the dummy address"
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn text_ltv_column_is_an_error_naming_the_column_and_its_type_on_mysql() {
        let shop = Shop::new(Backend::MySql).await;
        let db = shop.order_db("select email as ltv from orders where email = :email");
        let error = db.lookup("eve@example.com").await.unwrap_err();
        assert!(
            matches!(&error, OrdersError::ColumnType { column: "ltv", found, .. } if found == "VARCHAR"),
            "{error:?}"
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn non_numeric_text_and_fractional_counts_are_errors_naming_the_column_on_sqlite() {
        let shop = Shop::new(Backend::Sqlite).await;
        let text = shop.order_db("select email as ltv from orders where email = :email");
        let error = text.lookup("eve@example.com").await.unwrap_err();
        assert!(
            matches!(error, OrdersError::ColumnValue { column: "ltv", .. }),
            "{error:?}"
        );
        let fractional = shop.order_db("select 1 as ltv, 2.5 as disputes where :email <> ''");
        let error = fractional.lookup("eve@example.com").await.unwrap_err();
        assert!(error.to_string().contains("`disputes`"), "{error}");
        assert!(
            error.to_string().contains("2.5 is not a whole number"),
            "{error}"
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn missing_ltv_column_is_reported_by_check_query_even_without_a_row() {
        let shop = Shop::new(Backend::Sqlite).await;
        let db = shop
            .order_db("select sum(total) as total from orders where email = :email group by email");
        let error = db.check_query().await.unwrap_err();
        assert!(
            matches!(error, OrdersError::MissingColumn { column: "ltv", .. }),
            "{error:?}"
        );
        assert!(error.to_string().starts_with("orders.query:"), "{error}");
        let lookup = db.lookup("ada@example.com").await;
        assert!(
            matches!(lookup, Err(OrdersError::MissingColumn { .. })),
            "{lookup:?}"
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn answers_and_unknown_customers_are_cached_until_the_ttl_expires() {
        let shop = Shop::new(Backend::Sqlite).await;
        let latency = histogram();
        let db = OrderDb::connect_lazy(&OrderDbOptions {
            cache_ttl: Duration::from_millis(300),
            ..options(&shop.url, GROUPED_QUERY)
        })
        .expect("valid options")
        .with_latency_histogram(latency.clone());
        // Every status counts in GROUPED_QUERY: 1500.00 + 1000.00 + 999.99.
        assert_eq!(
            db.lookup("ada@example.com").await.unwrap(),
            stats("3499.99", 0, 0)
        );
        assert_eq!(db.lookup("new@example.com").await.unwrap(), None);
        shop.exec("update orders set refunded = 0; insert into orders values ('new@example.com', 'paid', 5, 0)")
            .await;
        assert_eq!(
            db.lookup("ada@example.com").await.unwrap(),
            stats("3499.99", 0, 0)
        );
        assert_eq!(db.lookup("new@example.com").await.unwrap(), None);
        assert_eq!(latency.get_sample_count(), 2, "cache hits do not query");

        let deadline = Instant::now() + Duration::from_secs(5);
        while db.lookup("new@example.com").await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "the cached answer never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            db.lookup("ada@example.com").await.unwrap(),
            stats("3700.49", 0, 0)
        );
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn zero_ttl_queries_the_database_every_time() {
        let shop = Shop::new(Backend::Sqlite).await;
        let latency = histogram();
        let db = shop
            .order_db(DEFAULT_QUERY)
            .with_latency_histogram(latency.clone());
        assert_eq!(
            db.lookup("bob@example.com").await.unwrap(),
            stats("0", 0, 0)
        );
        shop.exec("update orders set status = 'paid'").await;
        assert_eq!(
            db.lookup("bob@example.com").await.unwrap(),
            stats("80.00", 1, 0)
        );
        assert_eq!(latency.get_sample_count(), 2);
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_email_share_one_query() {
        let shop = Shop::new(Backend::Sqlite).await;
        let latency = histogram();
        let db = OrderDb::connect_lazy(&OrderDbOptions {
            cache_ttl: Duration::from_secs(60),
            ..options(&shop.url, DEFAULT_QUERY)
        })
        .expect("valid options")
        .with_latency_histogram(latency.clone());
        let email = "ada@example.com";
        let (a, b, c) = tokio::join!(db.lookup(email), db.lookup(email), db.lookup(email));
        for found in [a, b, c] {
            assert_eq!(found.unwrap(), stats("2500.00", 2, 0));
        }
        assert_eq!(latency.get_sample_count(), 1);
        shop.drop_database().await;
    }

    #[tokio::test]
    async fn failed_lookup_is_not_cached_and_a_missing_sqlite_file_is_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shop.db");
        let db = OrderDb::connect_lazy(&OrderDbOptions {
            cache_ttl: Duration::from_secs(60),
            ..options(&format!("sqlite://{}", path.display()), DEFAULT_QUERY)
        })
        .expect("a lazy pool connects nothing");
        let missing = db.lookup("ada@example.com").await;
        assert!(
            matches!(
                missing,
                Err(OrdersError::Unavailable {
                    backend: Backend::Sqlite,
                    ..
                })
            ),
            "{missing:?}"
        );
        assert!(!path.exists(), "read-only mode must not create the file");

        exec(&sqlite_writer(&path).await, SHOP).await;
        assert_eq!(
            db.lookup("ada@example.com").await.unwrap(),
            stats("2500.00", 2, 0)
        );
    }

    #[tokio::test]
    async fn lookup_future_can_be_spawned() {
        fn assert_send<T: Send + 'static>(_: T) {}
        let db = OrderDb::connect_lazy(&options("sqlite:///nonexistent.db", DEFAULT_QUERY))
            .expect("valid options");
        assert_send(async move { db.lookup("ada@example.com").await });
    }

    #[tokio::test]
    async fn mariadb_url_uses_the_mysql_driver_and_connects_nothing() {
        let db =
            OrderDb::connect_lazy(&options("mariadb://reader@127.0.0.1:1/shop", DEFAULT_QUERY))
                .expect("valid options");
        assert_eq!(db.backend(), "mysql");
        assert_eq!(format!("{db:?}"), "OrderDb { backend: \"mysql\", .. }");
    }

    #[test]
    fn bad_options_are_config_errors_naming_the_key() {
        let cases = [
            (options("", DEFAULT_QUERY), "orders.url:"),
            (
                options("oracle://db/shop", DEFAULT_QUERY),
                "orders.url: unsupported scheme `oracle://`",
            ),
            (
                options("postgres://db:port/shop", DEFAULT_QUERY),
                "orders.url: not a valid postgres URL",
            ),
            (
                options("sqlite://", DEFAULT_QUERY),
                "orders.url: not a valid sqlite URL",
            ),
            (
                options("sqlite://shop.db", "select 1 as ltv"),
                "orders.query:",
            ),
            (
                options("sqlite://shop.db", "select ':email' as ltv"),
                "orders.query:",
            ),
        ];
        for (opts, expected) in cases {
            let error = OrderDb::check_options(&opts).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    #[test]
    fn zero_pool_size_or_timeout_are_config_errors_naming_the_key() {
        let no_pool = OrderDbOptions {
            max_connections: 0,
            ..options("sqlite://shop.db", DEFAULT_QUERY)
        };
        let error = OrderDb::connect_lazy(&no_pool).unwrap_err().to_string();
        assert!(error.starts_with("orders.max_connections:"), "{error}");
        let no_time = OrderDbOptions {
            query_timeout: Duration::ZERO,
            ..options("sqlite://shop.db", DEFAULT_QUERY)
        };
        let error = OrderDb::connect_lazy(&no_time).unwrap_err().to_string();
        assert!(error.starts_with("orders.query_timeout:"), "{error}");
    }

    #[test]
    fn default_query_placeholders_become_each_drivers_syntax() {
        let rewrite = |backend| bind_email_placeholders(DEFAULT_QUERY, backend).unwrap();
        let pg = DEFAULT_QUERY.replace(":email", "$1");
        assert_eq!(rewrite(Backend::Postgres), (pg, 1));
        let sqlite = DEFAULT_QUERY.replace(":email", "?1");
        assert_eq!(rewrite(Backend::Sqlite), (sqlite, 1));
        let mysql = DEFAULT_QUERY.replace(":email", "?");
        assert_eq!(rewrite(Backend::MySql), (mysql, 2));
    }

    #[test]
    fn email_in_strings_identifiers_and_comments_is_left_alone() {
        let query = "select ':email', 'it''s :email', \"a:email\", `:email` -- :email\n\
                     /* :email */ as ltv from t where e = :email";
        let (sql, binds) = bind_email_placeholders(query, Backend::MySql).unwrap();
        assert_eq!(binds, 1);
        assert_eq!(sql, query.replacen("e = :email", "e = ?", 1));
    }

    #[test]
    fn casts_and_longer_names_are_not_placeholders() {
        let query = "select x::email, y::text, :emails, :email_x, :email$ as ltv where e=:email)";
        let (sql, binds) = bind_email_placeholders(query, Backend::Postgres).unwrap();
        assert_eq!(binds, 1);
        assert_eq!(sql, query.replace("e=:email)", "e=$1)"));
    }

    #[test]
    fn mysql_backslash_escapes_and_hash_comments_hide_email_and_bare_double_dash_does_not() {
        let query = "select 'it\\'s :email' as ltv # :email\nwhere e = :email";
        let (sql, binds) = bind_email_placeholders(query, Backend::MySql).unwrap();
        assert_eq!((sql.matches('?').count(), binds), (1, 1));
        // On MySQL `--` needs whitespace after it to start a comment.
        let (sql, _) =
            bind_email_placeholders("select 1--1 as ltv, :email", Backend::MySql).unwrap();
        assert_eq!(sql, "select 1--1 as ltv, ?");
        // On Postgres a backslash is an ordinary character, `#` an operator and `--` a comment.
        let (sql, _) =
            bind_email_placeholders("select :email # 1--:email", Backend::Postgres).unwrap();
        assert_eq!(sql, "select $1 # 1--:email");
    }

    #[test]
    fn postgres_block_comments_nest() {
        let query = "select /* a /* :email */ :email */ 1 as ltv where e = :email";
        let (sql, _) = bind_email_placeholders(query, Backend::Postgres).unwrap();
        assert_eq!(sql.matches("$1").count(), 1);
        let (sql, binds) = bind_email_placeholders(query, Backend::MySql).unwrap();
        assert_eq!((sql.matches('?').count(), binds), (2, 2));
    }

    #[test]
    fn unterminated_quotes_and_comments_hide_the_rest() {
        for query in ["select 'x :email", "select /* :email", "select \"x :email"] {
            assert!(
                bind_email_placeholders(query, Backend::Postgres).is_err(),
                "{query}"
            );
        }
    }

    /// A piece of SQL and how many `:email` placeholders it holds.
    fn fragment() -> impl Strategy<Value = (String, usize)> {
        let word = "[a-z0-9_ =(),.]{0,8}";
        prop_oneof![
            Just((":email".to_owned(), 1)),
            word.prop_map(|w| (w, 0)),
            word.prop_map(|w| (format!("'{w} :email ''{w}'"), 0)),
            word.prop_map(|w| (format!("\"{w}:email\""), 0)),
            word.prop_map(|w| (format!("`:email{w}`"), 0)),
            word.prop_map(|w| (format!("-- {w} :email\n"), 0)),
            word.prop_map(|w| (format!("/* {w} :email */"), 0)),
            Just(("x::email".to_owned(), 0)),
            Just((":emails".to_owned(), 0)),
            Just((":email_x".to_owned(), 0)),
        ]
    }

    proptest! {
        #[test]
        fn placeholders_outside_quotes_are_counted_and_rewritten(
            fragments in prop::collection::vec(fragment(), 0..12)
        ) {
            let query = fragments.iter().map(|(sql, _)| sql.as_str()).collect::<Vec<_>>().join(" ");
            let expected: usize = fragments.iter().map(|(_, n)| n).sum();
            for (backend, placeholder) in
                [(Backend::Postgres, "$1"), (Backend::Sqlite, "?1"), (Backend::MySql, "?")]
            {
                match bind_email_placeholders(&query, backend) {
                    Err(OrdersConfigError::NoEmailPlaceholder) => prop_assert_eq!(expected, 0),
                    Err(other) => prop_assert!(false, "unexpected {other}"),
                    Ok((sql, binds)) => {
                        prop_assert_eq!(sql.matches(placeholder).count(), expected);
                        prop_assert_eq!(binds, if backend == Backend::MySql { expected } else { 1 });
                        prop_assert_eq!(sql.replace(placeholder, ":email"), query.clone());
                    }
                }
            }
        }

        #[test]
        fn rewriting_never_panics_and_touches_only_placeholders(
            query in "(:email|::|[:'\"`/*#\\\\\n -]|[a-z$_]|\\PC){0,40}"
        ) {
            for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
                if let Ok((sql, _)) = bind_email_placeholders(&query, backend) {
                    if backend == Backend::Postgres && !query.contains("$1") {
                        prop_assert_eq!(sql.replace("$1", ":email"), query.clone());
                    }
                }
            }
        }
    }
}
