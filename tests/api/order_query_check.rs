//! A broken `orders.query` stops the start: the statement is described by the order DB (names
//! and types), so it is caught even when no customer matches; an unreachable order DB is not a
//! reason to refuse the start.

use std::time::Duration;

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig};
use ltv_tagger::app::Application;

use crate::helpers::{binary, rig, shop_db, test_settings, Db, TestDb};

/// What `Application::build` says for `query` against a fresh shop of `kind`.
async fn start_with(kind: Db, query: &str) -> Result<(), String> {
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await.expect("fake");
    let state = TestDb::create(Db::Sqlite, "ltv_state").await;
    let shop = shop_db(kind).await;
    let mut raw = test_settings(&state.url, &shop.url, &fake, &cfg, true, false);
    raw.orders.query = query.into();
    let built = Application::build(raw.validate().expect("valid"))
        .await
        .map(drop)
        .map_err(|e| format!("{e:#}"));
    shop.drop_db().await;
    built
}

async fn text_ltv_or_missing_ltv_stops_the_start(kind: Db, text_type: &str) {
    // The email matches nobody: a dummy-row check would see nothing wrong.
    let text = "select c.email as ltv from customer c where lower(c.email) = :email";
    let e = start_with(kind, text).await.expect_err("a text ltv");
    assert!(
        e.contains("orders.query") && e.contains(&format!("`ltv` has type {text_type}")),
        "{kind:?}: {e}"
    );
    let missing = "select count(*) as orders from customer where lower(email) = :email";
    let e = start_with(kind, missing).await.expect_err("no ltv");
    assert!(e.contains("no `ltv` column"), "{kind:?}: {e}");
    let bad_sql = "select ltv from no_such_table where email = :email";
    let e = start_with(kind, bad_sql).await.expect_err("no table");
    assert!(
        e.contains("orders.query does not fit the order DB"),
        "{kind:?}: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_or_missing_ltv_stops_the_start_on_postgres() {
    text_ltv_or_missing_ltv_stops_the_start(Db::Postgres, "VARCHAR").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_or_missing_ltv_stops_the_start_on_mariadb() {
    text_ltv_or_missing_ltv_stops_the_start(Db::Mariadb, "VARCHAR").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ltv_or_a_missing_table_stops_the_start_on_sqlite() {
    let missing = "select count(*) as orders from customer where lower(email) = :email";
    let e = start_with(Db::Sqlite, missing).await.expect_err("no ltv");
    assert!(e.contains("no `ltv` column"), "{e}");
    let bad_sql = "select ltv from no_such_table where email = :email";
    let e = start_with(Db::Sqlite, bad_sql).await.expect_err("no table");
    assert!(e.contains("orders.query does not fit the order DB"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_at_start_on_a_broken_query_but_starts_with_the_order_db_down() {
    let r = rig(Db::Sqlite, |raw| {
        raw.orders.query =
            "select count(*) as orders from customer where lower(email) = :email".into()
    })
    .await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&r.config)
            .env("LTV_TAGGER__SERVER__BIND", "127.0.0.1:0")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("serve stopped at start")
    .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("orders.query") && err.contains("no `ltv` column"),
        "{err}"
    );
    r.drop_dbs().await;

    // An order DB that does not answer is no reason to refuse the start.
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await.expect("fake");
    let state = TestDb::create(Db::Sqlite, "ltv_state").await;
    let mut raw = test_settings(
        &state.url,
        "postgres://reader@127.0.0.1:1/shop",
        &fake,
        &cfg,
        true,
        false,
    );
    raw.orders.query_timeout = Duration::from_secs(2);
    let built = Application::build(raw.validate().expect("valid")).await;
    assert!(built.is_ok(), "{:?}", built.err());
}

async fn several_rows_for_one_customer_are_an_error(kind: Db) {
    let shop = shop_db(kind).await;
    let defaults = ltv_tagger::config::RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET")
        .expect("defaults")
        .orders_options();
    let db = ltv_tagger::orders::OrderDb::connect_lazy(&ltv_tagger::orders::OrderDbOptions {
        url: shop.url.clone(),
        query: "select p.amount as ltv from purchase p join customer c on c.id = p.customer_id \
                where lower(c.email) = :email"
            .into(),
        cache_ttl: Duration::ZERO,
        ..defaults
    })
    .expect("options");
    let e = db
        .lookup("gold@shop.test")
        .await
        .expect_err("two purchases");
    assert!(
        e.to_string()
            .contains("returned several rows for one customer"),
        "{kind:?}: {e}"
    );
    // One row is still fine.
    assert!(db.lookup("small@shop.test").await.is_ok());
    shop.drop_db().await;
}

#[tokio::test]
async fn a_query_returning_several_rows_for_a_customer_is_an_error_on_sqlite() {
    several_rows_for_one_customer_are_an_error(Db::Sqlite).await;
}

#[tokio::test]
async fn a_query_returning_several_rows_for_a_customer_is_an_error_on_postgres() {
    several_rows_for_one_customer_are_an_error(Db::Postgres).await;
}

#[tokio::test]
async fn a_query_returning_several_rows_for_a_customer_is_an_error_on_mariadb() {
    several_rows_for_one_customer_are_an_error(Db::Mariadb).await;
}
