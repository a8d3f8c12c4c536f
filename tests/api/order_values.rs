//! Order-DB values that used to break a lookup: an `ltv` too large for a decimal is a clean,
//! retried error naming the column (never a panic).

use std::time::Duration;

use ltv_tagger::orders::{OrderDb, OrderDbOptions, OrdersError};

use crate::helpers::{spawn_app, trigger_body, wait_until, AppOptions, Db, TestDb};

fn order_db(db: &TestDb, query: &str) -> OrderDb {
    let defaults = ltv_tagger::config::RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET")
        .expect("defaults")
        .orders_options();
    OrderDb::connect_lazy(&OrderDbOptions {
        url: db.url.clone(),
        query: query.to_owned(),
        cache_ttl: Duration::ZERO,
        ..defaults
    })
    .expect("valid options")
}

#[tokio::test]
async fn a_postgres_numeric_too_large_for_a_decimal_is_an_error_naming_ltv() {
    let db = TestDb::create(Db::Postgres, "ltv_numeric").await;
    for huge in ["8e28", "-8e28", "1e100", "'NaN'"] {
        let q = format!("select {huge}::numeric as ltv where :email <> ''");
        let e = order_db(&db, &q).lookup("a@b.c").await.expect_err(huge);
        assert!(
            matches!(e, OrdersError::ColumnValue { column: "ltv", .. }),
            "{huge}: {e:?}"
        );
    }
    // Exact values either side of the limit still read exactly.
    for (sql, want) in [
        (
            "79228162514264337593543950335",
            "79228162514264337593543950335",
        ),
        ("-0.05", "-0.05"),
        ("123456789012.0001", "123456789012.0001"),
        ("0.00001", "0.00001"),
        ("10000", "10000"),
    ] {
        let q = format!("select {sql}::numeric as ltv where :email <> ''");
        let stats = order_db(&db, &q).lookup("a@b.c").await.expect(sql);
        assert_eq!(stats.map(|s| s.ltv.to_string()).as_deref(), Some(want));
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_ltv_leaves_the_job_retrying_with_a_clear_error_and_the_service_up() {
    let app = spawn_app(AppOptions {
        orders: Db::Postgres,
        tweak: Box::new(|raw| {
            raw.orders.query = "select 9e30::numeric as ltv where :email <> ''".into();
        }),
        ..AppOptions::default()
    })
    .await;
    let res = app
        .post_zendesk(&trigger_body(88, "gold@shop.test", ""), None)
        .await;
    assert_eq!(res.status().as_u16(), 202);
    wait_until(Duration::from_secs(30), "a retried job", || async {
        let jobs = app.store.list_jobs(false, 10).await.expect("jobs");
        jobs.iter().any(|j| {
            j.attempts >= 2
                && j.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("`ltv`") && e.contains("does not fit a decimal"))
        })
    })
    .await;
    let live = app
        .http
        .get(format!("{}/livez", app.base))
        .send()
        .await
        .expect("livez");
    assert_eq!(live.status().as_u16(), 200);
    assert!(app.zendesk_tags(88).is_empty());
    app.stop().await;
}
