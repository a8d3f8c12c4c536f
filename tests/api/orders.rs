//! The order lookup on every driver (PostgreSQL, MariaDB, SQLite), each test with a fresh database:
//! the default query, unknown customers, numeric column types, read-only sessions, column errors.

use std::str::FromStr;

use ltv_tagger::config::RawSettings;
use ltv_tagger::orders::{CustomerStats, OrderDb, OrderDbOptions, OrdersError};
use rust_decimal::Decimal;

use crate::helpers::{Db, TestDb};

/// A query that returns no row for an unknown customer.
const GROUPED_QUERY: &str = "select sum(total - refunded) as ltv from orders \
                             where lower(email) = :email group by lower(email)";

/// A fresh database of the given kind holding the fixture shop.
async fn shop(kind: Db) -> TestDb {
    let db = TestDb::create(kind, "ltv_orders").await;
    let sql: String = include_str!("../fixtures/orders-shop.sql")
        .lines()
        .filter(|line| !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<String> = sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    db.exec(&statements).await;
    db
}

/// The built-in settings (config/default.toml).
fn defaults() -> RawSettings {
    RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load")
}

/// `[orders].query` from config/default.toml.
fn default_query() -> String {
    defaults().orders.query
}

/// `[orders]` as the defaults have it, pointed at `shop`, with `query` and no cache.
fn order_db(shop: &TestDb, query: &str) -> OrderDb {
    OrderDb::connect_lazy(&OrderDbOptions {
        url: shop.url.clone(),
        query: query.to_owned(),
        cache_ttl: std::time::Duration::ZERO,
        ..defaults().orders_options()
    })
    .expect("valid options")
}

/// What `OrderDb::backend` says for each kind of database.
fn driver(kind: Db) -> &'static str {
    match kind {
        Db::Postgres => "postgres",
        Db::Mariadb => "mysql",
        Db::Sqlite => "sqlite",
    }
}

fn stats(ltv: &str, orders: i64, disputes: i64) -> Option<CustomerStats> {
    let ltv = Decimal::from_str(ltv).expect("decimal literal");
    Some(CustomerStats {
        ltv,
        orders,
        disputes,
        extra: Default::default(),
    })
}

async fn default_query_gives_exact_net_ltv_orders_and_disputes(backend: Db) {
    let shop = shop(backend).await;
    let db = order_db(&shop, &default_query());
    assert_eq!(db.backend(), driver(backend));
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
    shop.drop_db().await;
}

#[tokio::test]
async fn default_query_gives_exact_net_ltv_orders_and_disputes_on_postgres() {
    default_query_gives_exact_net_ltv_orders_and_disputes(Db::Postgres).await;
}

#[tokio::test]
async fn default_query_gives_exact_net_ltv_orders_and_disputes_on_mysql() {
    default_query_gives_exact_net_ltv_orders_and_disputes(Db::Mariadb).await;
}

#[tokio::test]
async fn default_query_gives_exact_net_ltv_orders_and_disputes_on_sqlite() {
    default_query_gives_exact_net_ltv_orders_and_disputes(Db::Sqlite).await;
}

async fn unknown_customer_is_none_when_the_query_returns_no_row(backend: Db) {
    let shop = shop(backend).await;
    let db = order_db(&shop, GROUPED_QUERY);
    db.check_query().await.expect("check_query without a row");
    assert_eq!(db.lookup("nobody@example.com").await.unwrap(), None);
    assert_eq!(
        db.lookup("bob@example.com").await.unwrap(),
        stats("80.00", 0, 0)
    );
    shop.drop_db().await;
}

#[tokio::test]
async fn unknown_customer_is_none_when_the_query_returns_no_row_on_postgres() {
    unknown_customer_is_none_when_the_query_returns_no_row(Db::Postgres).await;
}

#[tokio::test]
async fn unknown_customer_is_none_when_the_query_returns_no_row_on_mysql() {
    unknown_customer_is_none_when_the_query_returns_no_row(Db::Mariadb).await;
}

#[tokio::test]
async fn unknown_customer_is_none_when_the_query_returns_no_row_on_sqlite() {
    unknown_customer_is_none_when_the_query_returns_no_row(Db::Sqlite).await;
}

/// Each `(ltv expression, expected ltv)`; `orders` is `sum(1)` (DECIMAL on MySQL).
async fn ltv_columns_of_every_numeric_type_are_exact(backend: Db, cases: &[(&str, &str)]) {
    let shop = shop(backend).await;
    for (expression, expected) in cases {
        let query = format!(
            "select {expression} as LTV, sum(1) as orders from orders where lower(email) = :email"
        );
        let found = order_db(&shop, &query).lookup("eve@example.com").await;
        assert_eq!(found.unwrap(), stats(expected, 1, 0), "ltv = {expression}");
    }
    shop.drop_db().await;
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
    ltv_columns_of_every_numeric_type_are_exact(Db::Postgres, &cases).await;
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
    ltv_columns_of_every_numeric_type_are_exact(Db::Mariadb, &cases).await;
}

#[tokio::test]
async fn integer_real_text_and_null_ltv_values_are_exact_decimals_on_sqlite() {
    let cases = [
        ("42", "42"),
        ("19.99", "19.99"),
        ("'19.99'", "19.99"),
        ("null", "0"),
    ];
    ltv_columns_of_every_numeric_type_are_exact(Db::Sqlite, &cases).await;
}

async fn session_is_read_only(backend: Db, write: &str) {
    let shop = shop(backend).await;
    let writing = order_db(&shop, write).lookup("ada@example.com").await;
    assert!(
        matches!(writing, Err(OrdersError::Query { .. })),
        "{writing:?}"
    );
    let ada = order_db(&shop, &default_query())
        .lookup("ada@example.com")
        .await;
    assert_eq!(ada.unwrap(), stats("2500.00", 2, 0));
    shop.drop_db().await;
}

#[tokio::test]
async fn session_is_read_only_on_postgres() {
    let write = "update orders set total = 0 where lower(email) = :email returning total as ltv";
    session_is_read_only(Db::Postgres, write).await;
}

#[tokio::test]
async fn session_is_read_only_on_mysql() {
    let write = "update orders set total = 0 where lower(email) = :email";
    session_is_read_only(Db::Mariadb, write).await;
}

#[tokio::test]
async fn session_is_read_only_on_sqlite() {
    let write = "update orders set total = 0 where lower(email) = :email returning total as ltv";
    session_is_read_only(Db::Sqlite, write).await;
}

#[tokio::test]
async fn text_ltv_column_is_an_error_naming_the_column_and_its_type_on_postgres() {
    let shop = shop(Db::Postgres).await;
    let db = order_db(
        &shop,
        "select email as ltv from orders where email = :email",
    );
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
    shop.drop_db().await;
}

#[tokio::test]
async fn text_ltv_column_is_an_error_naming_the_column_and_its_type_on_mysql() {
    let shop = shop(Db::Mariadb).await;
    let db = order_db(
        &shop,
        "select email as ltv from orders where email = :email",
    );
    let error = db.lookup("eve@example.com").await.unwrap_err();
    assert!(
        matches!(&error, OrdersError::ColumnType { column: "ltv", found, .. } if found == "VARCHAR"),
        "{error:?}"
    );
    shop.drop_db().await;
}
