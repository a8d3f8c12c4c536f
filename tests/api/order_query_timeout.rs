//! A slow MySQL/MariaDB order query is stopped on the server at `orders.query_timeout`: it does
//! not go on running (and holding a connection) after the lookup gave up.

use std::time::{Duration, Instant};

use ltv_tagger::config::RawSettings;
use ltv_tagger::orders::{OrderDb, OrderDbOptions};
use sqlx::Connection;

use crate::helpers::{Db, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_mariadb_order_query_is_stopped_on_the_server_at_the_query_timeout() {
    let db = TestDb::create(Db::Mariadb, "ltv_slow").await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let query =
        format!("select sleep(30) as ltv from (select 1 as x) t where :email <> '{marker}'");
    let defaults = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults");
    let orders = OrderDb::connect_lazy(&OrderDbOptions {
        url: db.url.clone(),
        query,
        cache_ttl: Duration::ZERO,
        query_timeout: Duration::from_secs(1),
        ..defaults.orders_options()
    })
    .expect("valid options");

    let err = orders
        .lookup("someone@shop.test")
        .await
        .expect_err("a 30 s query under a 1 s timeout");
    println!("lookup: {err}");

    // The server has stopped it too: no statement of ours is left in its process list.
    let mut admin = sqlx::MySqlConnection::connect(crate::helpers::MARIADB_ADMIN)
        .await
        .expect("admin");
    let running = format!(
        "select count(*) from information_schema.processlist where info like '%{marker}%' \
         and id <> connection_id()"
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let n: i64 = sqlx::query_scalar(&running)
            .fetch_one(&mut admin)
            .await
            .expect("processlist");
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 30 s query still runs on the server after the 1 s timeout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(orders);
    db.drop_db().await;
}
