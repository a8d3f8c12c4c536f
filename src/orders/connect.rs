//! Read-only connection pools per driver (PostgreSQL, MySQL/MariaDB, SQLite) from `orders.url`.

use std::fmt;
use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Database, Executor};

use super::{OrderDbOptions, OrdersConfigError, OrdersError};

/// The driver behind `orders.url` (MariaDB uses the MySQL one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

impl Backend {
    /// Also the canonical URL scheme handed to the driver.
    pub(super) fn as_str(self) -> &'static str {
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

#[derive(Clone)]
pub(super) enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

pub(super) enum ConnectOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Pool {
    /// A LAZY pool: no connection is made until the first query.
    pub(super) fn connect_lazy(options: ConnectOptions, opts: &OrderDbOptions) -> Pool {
        match options {
            ConnectOptions::Postgres(o) => Pool::Postgres(pool_options(opts).connect_lazy_with(o)),
            ConnectOptions::MySql(o) => {
                let timeout = opts.query_timeout;
                Pool::MySql(
                    pool_options::<sqlx::MySql>(opts)
                        .after_connect(move |conn, _meta| {
                            Box::pin(async move {
                                conn.execute("set session transaction read only").await?;
                                super::server_timeout::limit_statement_time(conn, timeout).await?;
                                Ok(())
                            })
                        })
                        .connect_lazy_with(o),
                )
            }
            ConnectOptions::Sqlite(o) => Pool::Sqlite(
                pool_options::<sqlx::Sqlite>(opts)
                    // SQLite's lower() folds ASCII only: emails are lower-cased in Unicode.
                    .after_connect(|conn, _meta| Box::pin(super::sqlite_lower::register(conn)))
                    .connect_lazy_with(o),
            ),
        }
    }

    /// Why no connection opens, when none is open: the timed-out lookup then reports the cause
    /// (refused, DNS, TLS, auth) rather than a bare timeout. `None` while connections are open.
    pub(super) async fn connect_failure(&self) -> Option<sqlx::Error> {
        use crate::connect_error::diagnose_pool_timeout as diagnose;
        match self {
            Pool::Postgres(p) if p.size() == 0 => Some(diagnose(p, DIAGNOSE_WITHIN).await),
            Pool::MySql(p) if p.size() == 0 => Some(diagnose(p, DIAGNOSE_WITHIN).await),
            Pool::Sqlite(p) if p.size() == 0 => Some(diagnose(p, DIAGNOSE_WITHIN).await),
            _ => None,
        }
    }

    pub(super) fn backend(&self) -> Backend {
        match self {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }
}

impl ConnectOptions {
    pub(super) fn backend(&self) -> Backend {
        match self {
            ConnectOptions::Postgres(_) => Backend::Postgres,
            ConnectOptions::MySql(_) => Backend::MySql,
            ConnectOptions::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Parses `orders.url` into read-only driver options (`mariadb://` and `postgresql://` become the
/// driver's own scheme).
pub(super) fn connect_options(opts: &OrderDbOptions) -> Result<ConnectOptions, OrdersConfigError> {
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

/// A connection from the pool; failing to get one means the database is unavailable.
pub(super) async fn acquire<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
) -> Result<PoolConnection<DB>, OrdersError> {
    match pool.acquire().await {
        Ok(conn) => Ok(conn),
        // "pool timed out" hides the cause: find it with one direct connection.
        Err(sqlx::Error::PoolTimedOut) => {
            let cause = crate::connect_error::diagnose_pool_timeout(pool, DIAGNOSE_WITHIN).await;
            Err(OrdersError::unavailable(backend, cause))
        }
        Err(e) => Err(OrdersError::unavailable(backend, e)),
    }
}

/// How long the direct connection that explains a pool timeout may take.
const DIAGNOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use crate::orders::testing::{options, DEFAULT_QUERY};
    use crate::orders::OrderDb;

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
}
