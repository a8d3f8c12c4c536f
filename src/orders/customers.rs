//! `orders.customers_query`: every customer at once, streamed row by row (for `thresholds`).
//!
//! Contract with the operator: one row per customer, columns matched by name without regard to
//! case: `email` (required), `ltv` (required), `orders` and `disputes` (optional), with the same
//! types and meaning as in `orders.query` (see the [module doc](super)). No placeholder: the query
//! takes no parameter. Rows are decoded one at a time as they arrive (`fetch`, not `fetch_all`), so
//! a shop with a million customers is never held as raw rows.

use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::{Column, ColumnIndex, Database, Executor, IntoArguments, Row};

use super::connect::{acquire, connect_options, Pool};
use super::decode::{mysql_number, pg_number, sqlite_number, stats_from_row, NumberReader};
use super::{
    bind_email_placeholders, column_names, Backend, CustomerStats, OrderDbOptions, OrdersError,
};

/// A whole-shop scan may take much longer than one lookup (`orders.query_timeout`).
const SCAN_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A problem with `orders.customers_query`, named by its key.
#[derive(Debug, thiserror::Error)]
#[error("orders.customers_query: {0}")]
pub struct CustomersError(String);

impl CustomersError {
    fn new(e: impl std::fmt::Display) -> CustomersError {
        let text = e.to_string();
        // The shared decoder names `orders.query`; here the query is the other one.
        let text = text
            .strip_prefix("orders.query: ")
            .unwrap_or(&text)
            .to_owned();
        CustomersError(text)
    }
}

/// The read-only scan of every customer.
pub struct CustomerScan {
    pool: Pool,
    sql: String,
}

impl CustomerScan {
    /// Checks the query text without connecting: it must be set and take no `:email`.
    pub fn check(opts: &OrderDbOptions, query: &str) -> Result<(), CustomersError> {
        if query.trim().is_empty() {
            return Err(CustomersError(
                "not set: write a query returning one row per customer with columns email, ltv \
                 (and optionally orders, disputes)"
                    .into(),
            ));
        }
        let backend = connect_options(opts)
            .map_err(CustomersError::new)?
            .backend();
        if bind_email_placeholders(query, backend).is_ok() {
            return Err(CustomersError(
                "takes no :email placeholder: it reads every customer at once".into(),
            ));
        }
        Ok(())
    }

    /// A lazy pool of one connection on `orders.url` (no connection is made here).
    pub fn connect_lazy(opts: &OrderDbOptions, query: &str) -> anyhow::Result<CustomerScan> {
        CustomerScan::check(opts, query)?;
        // Postgres' statement_timeout comes from `query_timeout`: give the scan its own.
        let scan_opts = OrderDbOptions {
            query_timeout: SCAN_TIMEOUT,
            ..clone_options(opts)
        };
        let options = connect_options(&scan_opts)?;
        let pool_opts = OrderDbOptions {
            max_connections: 1,
            ..clone_options(opts)
        };
        Ok(CustomerScan {
            pool: Pool::connect_lazy(options, &pool_opts),
            sql: query.to_owned(),
        })
    }

    /// Runs the query and hands every customer to `each`, in the order the rows arrive.
    /// Returns the number of rows read.
    pub async fn for_each(
        &self,
        each: &mut (dyn FnMut(CustomerStats) + Send),
    ) -> Result<u64, CustomersError> {
        let sql = self.sql.as_str();
        let scan = async {
            match &self.pool {
                Pool::Postgres(p) => scan(p, Backend::Postgres, sql, pg_number, each).await,
                Pool::MySql(p) => scan(p, Backend::MySql, sql, mysql_number, each).await,
                Pool::Sqlite(p) => scan(p, Backend::Sqlite, sql, sqlite_number, each).await,
            }
        };
        tokio::time::timeout(SCAN_TIMEOUT, scan)
            .await
            .unwrap_or_else(|_| {
                Err(CustomersError(format!(
                    "did not finish within {SCAN_TIMEOUT:?}"
                )))
            })
    }

    /// Checks the columns (even when the shop has no customer yet), then decodes one row, which
    /// checks their types (`check-config --query`).
    pub async fn check_query(&self) -> Result<(), CustomersError> {
        let backend = self.pool.backend();
        let sql = self.sql.as_str();
        let check = async {
            let columns = match &self.pool {
                Pool::Postgres(p) => column_names(p, backend, sql).await,
                Pool::MySql(p) => column_names(p, backend, sql).await,
                Pool::Sqlite(p) => column_names(p, backend, sql).await,
            }
            .map_err(CustomersError::new)?;
            for needed in ["email", "ltv"] {
                if !columns.iter().any(|c| c.eq_ignore_ascii_case(needed)) {
                    return Err(CustomersError(format!(
                        "the {backend} result has no `{needed}` column"
                    )));
                }
            }
            let first = format!(
                "select * from ({}) customers_query_check limit 1",
                sql.trim().trim_end_matches(';')
            );
            let first = first.as_str();
            let mut ignore = |_: CustomerStats| {};
            match &self.pool {
                Pool::Postgres(p) => scan(p, backend, first, pg_number, &mut ignore).await,
                Pool::MySql(p) => scan(p, backend, first, mysql_number, &mut ignore).await,
                Pool::Sqlite(p) => scan(p, backend, first, sqlite_number, &mut ignore).await,
            }
            .map(drop)
        };
        tokio::time::timeout(Duration::from_secs(60), check)
            .await
            .unwrap_or_else(|_| Err(CustomersError("did not answer within 60s".into())))
    }
}

fn clone_options(o: &OrderDbOptions) -> OrderDbOptions {
    OrderDbOptions {
        url: o.url.clone(),
        query: o.query.clone(),
        cache_ttl: o.cache_ttl,
        cache_capacity: o.cache_capacity,
        max_connections: o.max_connections,
        query_timeout: o.query_timeout,
    }
}

async fn scan<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
    sql: &str,
    number: NumberReader<DB::Row>,
    each: &mut (dyn FnMut(CustomerStats) + Send),
) -> Result<u64, CustomersError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut conn = acquire(pool, backend).await.map_err(CustomersError::new)?;
    let mut rows = sqlx::query(sql).fetch(&mut *conn);
    let mut n = 0u64;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| CustomersError::new(OrdersError::from_statement(backend, e)))?
    {
        if n == 0
            && !row
                .columns()
                .iter()
                .any(|c| c.name().eq_ignore_ascii_case("email"))
        {
            return Err(CustomersError(format!(
                "the {backend} result has no `email` column"
            )));
        }
        each(stats_from_row(&row, backend, number).map_err(CustomersError::new)?);
        n += 1;
    }
    Ok(n)
}
