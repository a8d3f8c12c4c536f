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

/// A shop whose customer email is stored with non-ASCII capitals.
async fn accented_shop(kind: Db) -> TestDb {
    let db = TestDb::create(kind, "ltv_unicode").await;
    db.exec(&[
        "create table orders (email varchar(200) not null, total decimal(12,2) not null)".into(),
        "insert into orders (email, total) values ('JOSÉ.ÑÚÑEZ@Shop.Test', 600.00)".into(),
        "insert into orders (email, total) values ('ÅSA@shop.test', 10.00)".into(),
    ])
    .await;
    db
}

const ACCENTED_QUERY: &str = "select coalesce(sum(total), 0) as ltv, count(*) as orders \
                              from orders where lower(email) = :email";

async fn non_ascii_emails_match_case_insensitively(kind: Db) {
    let db = accented_shop(kind).await;
    let orders = order_db(&db, ACCENTED_QUERY);
    let stats = orders
        .lookup("josé.ñúñez@shop.test")
        .await
        .expect("lookup")
        .expect("a row");
    assert_eq!(
        (stats.ltv, stats.orders),
        (rust_decimal::Decimal::new(600, 0), 1),
        "{kind:?}"
    );
    let stats = orders.lookup("åsa@shop.test").await.expect("lookup");
    assert_eq!(stats.map(|s| s.orders), Some(1), "{kind:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn non_ascii_emails_match_case_insensitively_on_sqlite() {
    non_ascii_emails_match_case_insensitively(Db::Sqlite).await;
}

#[tokio::test]
async fn non_ascii_emails_match_case_insensitively_on_postgres() {
    non_ascii_emails_match_case_insensitively(Db::Postgres).await;
}

#[tokio::test]
async fn non_ascii_emails_match_case_insensitively_on_mariadb() {
    non_ascii_emails_match_case_insensitively(Db::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_for_an_accented_customer_tags_them_from_a_sqlite_shop() {
    let app = spawn_app(AppOptions::default()).await;
    app.shop
        .exec(&[
            "insert into customer (id, email) values (1000, 'JOSÉ.ÑÚÑEZ@Shop.Test')".into(),
            "insert into purchase (id, customer_id, amount, status) values (1000, 1000, 600.00, 'paid')"
                .into(),
        ])
        .await;
    let res = app
        .post_zendesk(&trigger_body(89, "José.Ñúñez@shop.test", ""), None)
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let rows = app
        .wait_for_audit(ltv_tagger::domain::Source::Zendesk, 89, 1)
        .await;
    assert_eq!(rows[0].record.outcome, "tagged", "{:?}", rows[0].record);
    assert_eq!(app.zendesk_tags(89), ["vip"]);
    app.stop().await;
}
