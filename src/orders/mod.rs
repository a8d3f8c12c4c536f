//! The customer lookup in the shop's order database: one read-only SQL query per customer, cached.
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
//! - Money becomes a [`Decimal`](rust_decimal::Decimal) without float arithmetic: a REAL/DOUBLE
//!   value is converted through its shortest decimal spelling, so a stored `19.99` reads as exactly
//!   `19.99`.
//!
//! Contract with the service: [`OrderDb::connect_lazy`] connects nothing, so the service starts while
//! the order database is down. Sessions are read-only where the driver allows it (Postgres
//! `default_transaction_read_only`, MySQL/MariaDB `set session transaction read only`, SQLite opened
//! read-only, the file must exist). Every lookup fails within `query_timeout`, never hangs.
//! Answers (unknown customers included, errors excluded) are cached for `cache_ttl`, and concurrent
//! lookups of one email share one query.
//!
//! Layout: this file is the lookup ([`OrderDb`]: cache, timeout, latency histogram, `ping`,
//! `check_query`); `connect` builds the read-only pool per driver from `orders.url`;
//! `placeholders` rewrites `:email`; `decode` reads a row as [`CustomerStats`]; `error` holds
//! [`OrdersConfigError`] and [`OrdersError`]; `testing` holds the unit tests' SQLite shop;
//! `presets` holds the ready-made SQL per shop platform (`orders.preset`); `plan` is the index
//! check (`EXPLAIN` per driver) and `sql_names` reads the query text for it.

mod connect;
mod customers;
mod decode;
mod describe;
mod error;
mod extra;
mod pg_numeric;
mod placeholders;
mod plan;
pub mod presets;
mod server_timeout;
mod sql_names;
mod sqlite_lower;
#[cfg(test)]
mod testing;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use prometheus::Histogram;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use connect::{acquire, connect_options, Pool};
use decode::{mysql_number, pg_number, sqlite_number, stats_from_row, NumberReader};
use extra::{extra_columns, mysql_other, pg_other, sqlite_other, OtherReader};

pub use crate::domain::CustomerStats;
pub use connect::Backend;
pub use customers::{CustomerScan, CustomersError};
pub use error::{OrdersConfigError, OrdersError};
pub use placeholders::bind_email_placeholders;
pub use plan::ScanWarning;

/// The address `check_query` looks up: the `.invalid` TLD never belongs to a customer.
const CHECK_EMAIL: &str = "nobody@example.invalid";

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
    /// `orders.query` as written (with `:email`), for the index check.
    source: Arc<str>,
    binds: usize,
    query_timeout: Duration,
    cache: Option<Cache<String, Option<CustomerStats>>>,
    latency: Option<Histogram>,
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
        let pool = Pool::connect_lazy(options, opts);
        let cache = (!opts.cache_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(opts.cache_capacity)
                .time_to_live(opts.cache_ttl)
                .build()
        });
        Ok(Self {
            pool,
            sql: sql.into(),
            source: opts.query.as_str().into(),
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

    /// The names of the columns `orders.query` returns (the statement is prepared, not run).
    pub async fn columns(&self) -> Result<Vec<String>, OrdersError> {
        let backend = self.pool.backend();
        self.timed(async {
            match &self.pool {
                Pool::Postgres(p) => column_names(p, backend, &self.sql).await,
                Pool::MySql(p) => column_names(p, backend, &self.sql).await,
                Pool::Sqlite(p) => column_names(p, backend, &self.sql).await,
            }
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
                let readers = (pg_number as NumberReader<_>, pg_other as OtherReader<_>);
                fetch_stats(p, Backend::Postgres, sql, email, binds, readers).await
            }
            Pool::MySql(p) => {
                let readers = (
                    mysql_number as NumberReader<_>,
                    mysql_other as OtherReader<_>,
                );
                fetch_stats(p, Backend::MySql, sql, email, binds, readers).await
            }
            Pool::Sqlite(p) => {
                let readers = (
                    sqlite_number as NumberReader<_>,
                    sqlite_other as OtherReader<_>,
                );
                fetch_stats(p, Backend::Sqlite, sql, email, binds, readers).await
            }
        }
    }

    async fn timed<T>(
        &self,
        work: impl Future<Output = Result<T, OrdersError>>,
    ) -> Result<T, OrdersError> {
        match tokio::time::timeout(self.query_timeout, work).await {
            Ok(r) => r,
            // Timed out before any connection opened: say why none does (issue 9, item 13).
            Err(_) => Err(match self.pool.connect_failure().await {
                Some(cause) => OrdersError::unavailable(self.pool.backend(), cause),
                None => OrdersError::Timeout {
                    backend: self.pool.backend(),
                    after: self.query_timeout,
                },
            }),
        }
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
        .map_err(|e| OrdersError::from_statement(backend, e))
}

pub(super) async fn column_names<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
    sql: &str,
) -> Result<Vec<String>, OrdersError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let columns = describe::described(pool, backend, sql).await?;
    Ok(columns.into_iter().map(|(name, _)| name).collect())
}

async fn fetch_stats<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
    sql: &str,
    email: &str,
    binds: usize,
    (number, other): (NumberReader<DB::Row>, OtherReader<DB::Row>),
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
    // Two rows at most: a second one means the query is not one row per customer, and taking
    // the first would tag from a part of their orders.
    let mut rows = query.fetch(&mut *conn);
    let row = futures_util::TryStreamExt::try_next(&mut rows)
        .await
        .map_err(|e| OrdersError::from_statement(backend, e))?;
    if row.is_some()
        && futures_util::TryStreamExt::try_next(&mut rows)
            .await
            .map_err(|e| OrdersError::from_statement(backend, e))?
            .is_some()
    {
        return Err(OrdersError::SeveralRows { backend });
    }
    row.map(|row| {
        stats_from_row(&row, backend, number).map(|stats| CustomerStats {
            extra: extra_columns(&row, number, other),
            ..stats
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::testing::{
        exec, histogram, options, sqlite_writer, stats, Shop, DEFAULT_QUERY, GROUPED_QUERY, SHOP,
    };
    use super::*;

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
    async fn missing_ltv_column_is_reported_by_check_query_even_without_a_row() {
        let shop = Shop::new().await;
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
    }

    #[tokio::test]
    async fn answers_and_unknown_customers_are_cached_until_the_ttl_expires() {
        let shop = Shop::new().await;
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
    }

    #[tokio::test]
    async fn zero_ttl_queries_the_database_every_time() {
        let shop = Shop::new().await;
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
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_email_share_one_query() {
        let shop = Shop::new().await;
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
}
