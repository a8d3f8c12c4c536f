//! Fixtures for the orders unit tests: options, expected stats and a SQLite shop in a temp file.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use prometheus::Histogram;
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use super::{CustomerStats, OrderDb, OrderDbOptions};

/// `[orders].query` from config/default.toml.
pub const DEFAULT_QUERY: &str = "
select coalesce(sum(total - refunded), 0) as ltv, count(*) as orders,
       (select count(*) from chargebacks c where lower(c.email) = :email) as disputes
from orders where lower(email) = :email and status = 'paid'
";
/// A query that returns no row for an unknown customer.
pub const GROUPED_QUERY: &str = "select sum(total - refunded) as ltv from orders \
                                 where lower(email) = :email group by lower(email)";

/// The tiny shop, shared with the integration tests that run it on every driver.
pub const SHOP: &str = include_str!("../../tests/fixtures/orders-shop.sql");

pub fn stats(ltv: &str, orders: i64, disputes: i64) -> Option<CustomerStats> {
    Some(CustomerStats {
        ltv: Decimal::from_str(ltv).expect("decimal literal"),
        orders,
        disputes,
        extra: Default::default(),
    })
}

pub fn options(url: &str, query: &str) -> OrderDbOptions {
    OrderDbOptions {
        url: url.to_owned(),
        query: query.to_owned(),
        cache_ttl: Duration::ZERO,
        cache_capacity: 1000,
        max_connections: 2,
        query_timeout: Duration::from_secs(5),
    }
}

pub fn histogram() -> Histogram {
    Histogram::with_opts(prometheus::HistogramOpts::new(
        "order_query_seconds",
        "test",
    ))
    .expect("histogram")
}

/// A writable connection to a SQLite file, created if missing.
pub async fn sqlite_writer(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    SqlitePool::connect_with(options)
        .await
        .expect("sqlite file")
}

pub async fn exec(pool: &SqlitePool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .map(drop)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A fresh SQLite file holding SHOP.
pub struct Shop {
    pub url: String,
    writer: SqlitePool,
    _dir: tempfile::TempDir,
}

impl Shop {
    pub async fn new() -> Shop {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shop.db");
        let shop = Shop {
            url: format!("sqlite://{}", path.display()),
            writer: sqlite_writer(&path).await,
            _dir: dir,
        };
        shop.exec(SHOP).await;
        shop
    }

    pub async fn exec(&self, sql: &str) {
        exec(&self.writer, sql).await;
    }

    pub fn order_db(&self, query: &str) -> OrderDb {
        OrderDb::connect_lazy(&options(&self.url, query)).expect("valid options")
    }
}
