//! The index check (`check-config --query`, and `serve` at start): a table the lookup reads whole
//! is named with the `create index` that fixes it; with the index in place the check is silent.
//! On every driver, with the fixture shop (tests/fixtures/orders-shop.sql) and hand-written queries.

use std::process::Stdio;
use std::time::Duration;

use ltv_tagger::config::RawSettings;
use ltv_tagger::orders::{OrderDb, OrderDbOptions};

use crate::helpers::{binary, free_port, wait_until, write_config, Db, ServeProcess, TestDb};
use crate::presets::fixture_db;

/// The default query of config/default.toml.
fn default_query() -> String {
    RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET")
        .expect("defaults load")
        .orders
        .query
}

/// The fixture shop with enough rows that no optimizer reads a table as a constant.
async fn shop(kind: Db) -> TestDb {
    let db = fixture_db(kind, "orders-shop.sql").await;
    let rows: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "insert into orders (email, status, total, refunded) values ('c{i}@shop.test', 'paid', {i}, 0)"
            )
        })
        .chain((0..40).map(|i| {
            format!("insert into chargebacks (email, amount) values ('d{i}@shop.test', 1)")
        }))
        .collect();
    db.exec(&rows).await;
    db
}

/// (table, fix) for each table `query` reads whole on `db`.
async fn scans(db: &TestDb, query: &str) -> Vec<(String, String)> {
    let defaults = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load");
    let orders = OrderDb::connect_lazy(&OrderDbOptions {
        url: db.url.clone(),
        query: query.to_owned(),
        ..defaults.orders_options()
    })
    .expect("valid options");
    let mut found: Vec<(String, String)> = orders
        .whole_table_scans(&[])
        .await
        .expect("explain")
        .into_iter()
        .map(|w| (w.table, w.fix))
        .collect();
    found.sort();
    found
}

fn pair(table: &str, fix: &str) -> (String, String) {
    (table.to_owned(), fix.to_owned())
}

async fn default_query_warns_until_both_email_indexes_exist(kind: Db) {
    let db = shop(kind).await;
    let (orders_fix, chargebacks_fix) = match kind {
        Db::Postgres => (
            "create index ltv_tagger_orders_email on orders ((lower(email)))",
            "create index ltv_tagger_chargebacks_email on chargebacks ((lower(email)))",
        ),
        _ => (
            "create index ltv_tagger_orders_email on orders (lower(email))",
            "create index ltv_tagger_chargebacks_email on chargebacks (lower(email))",
        ),
    };
    assert_eq!(
        scans(&db, &default_query()).await,
        vec![
            pair("chargebacks", chargebacks_fix),
            pair("orders", orders_fix)
        ]
    );
    db.exec(&[orders_fix.to_owned()]).await;
    assert_eq!(
        scans(&db, &default_query()).await,
        vec![pair("chargebacks", chargebacks_fix)]
    );
    db.exec(&[chargebacks_fix.to_owned()]).await;
    assert_eq!(scans(&db, &default_query()).await, vec![]);
    db.drop_db().await;
}

#[tokio::test]
async fn index_check_warns_until_both_email_indexes_exist_on_postgres() {
    default_query_warns_until_both_email_indexes_exist(Db::Postgres).await;
}

#[tokio::test]
async fn index_check_warns_until_both_email_indexes_exist_on_sqlite() {
    default_query_warns_until_both_email_indexes_exist(Db::Sqlite).await;
}

#[tokio::test]
async fn index_check_on_mariadb_asks_for_a_plain_email_comparison_and_its_index() {
    let db = shop(Db::Mariadb).await;
    // lower(email) cannot use an index on MariaDB: the fix says to compare the column itself.
    let lowered = scans(&db, &default_query()).await;
    assert_eq!(lowered.len(), 2, "{lowered:?}");
    assert_eq!(lowered[1].0, "orders");
    assert!(
        lowered[1].1.starts_with(
            "create index ltv_tagger_orders_email on orders (email), and compare `email = :email` without lower(email)"
        ),
        "{lowered:?}"
    );
    let plain = "select coalesce(sum(total - refunded), 0) as ltv, count(*) as orders, \
                 (select count(*) from chargebacks c where c.email = :email) as disputes \
                 from orders where email = :email and status = 'paid'";
    assert_eq!(
        scans(&db, plain).await,
        vec![
            pair(
                "chargebacks",
                "create index ltv_tagger_chargebacks_email on chargebacks (email)"
            ),
            pair(
                "orders",
                "create index ltv_tagger_orders_email on orders (email)"
            ),
        ]
    );
    db.exec(&[
        "create index ltv_tagger_orders_email on orders (email)".to_owned(),
        "create index ltv_tagger_chargebacks_email on chargebacks (email)".to_owned(),
    ])
    .await;
    assert_eq!(scans(&db, plain).await, vec![]);
    db.drop_db().await;
}

/// Settings for the binary: the shop on `db`, a Zendesk account (not called by check-config).
fn config_for(db: &TestDb, dir: &std::path::Path) -> std::path::PathBuf {
    let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load");
    raw.orders.url = db.url.clone();
    raw.state.url = format!("sqlite://{}", dir.join("state.db").display());
    raw.zendesk.api_base_url = "http://127.0.0.1:9".into();
    raw.zendesk.email = "agent@acme.test".into();
    raw.zendesk.api_token = secrecy::SecretString::from("token");
    raw.zendesk.webhook_secret = secrecy::SecretString::from("secret");
    write_config(
        dir,
        &raw,
        &[
            ("zendesk", "api_token", "token"),
            ("zendesk", "webhook_secret", "secret"),
        ],
    )
}

#[tokio::test]
async fn check_config_query_prints_each_missing_index_and_says_when_all_are_there() {
    let db = shop(Db::Postgres).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(&db, dir.path());
    let run = || async {
        let out = tokio::process::Command::new(binary())
            .args(["check-config", "--query", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run check-config");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run().await;
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        "warning: orders.query reads the whole table orders on every lookup (no index serves it); fix: create index ltv_tagger_orders_email on orders ((lower(email)))",
        "warning: orders.query reads the whole table chargebacks on every lookup (no index serves it); fix: create index ltv_tagger_chargebacks_email on chargebacks ((lower(email)))",
    ] {
        assert!(stderr.contains(line), "{line}\n---\n{stderr}");
    }
    db.exec(&[
        "create index ltv_tagger_orders_email on orders ((lower(email)))".to_owned(),
        "create index ltv_tagger_chargebacks_email on chargebacks ((lower(email)))".to_owned(),
    ])
    .await;
    let (code, stderr) = run().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(
        stderr.contains("index check: every table orders.query reads is reached through an index"),
        "{stderr}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn serve_logs_a_warning_at_start_for_a_table_read_whole() {
    let db = shop(Db::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(&db, dir.path());
    let log = dir.path().join("serve.log");
    let mut serve = ServeProcess::start(&config, free_port(), &log, &[]).await;
    let fix = "create index ltv_tagger_orders_email on orders (lower(email))";
    wait_until(
        Duration::from_secs(20),
        "the index warning in the log",
        || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(fix)
        },
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text.lines().find(|l| l.contains(fix)).unwrap_or_default();
    assert!(line.contains("\"level\":\"WARN\""), "{line}");
    assert!(line.contains("\"table\":\"orders\""), "{line}");
    serve.sigkill();
}

#[tokio::test]
async fn check_config_query_with_a_preset_prints_its_queries_and_exact_index_statement() {
    let db = fixture_db(Db::Mariadb, "presets/magento2.sql").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(&db, dir.path());
    let run = || async {
        let out = tokio::process::Command::new(binary())
            .args(["check-config", "--query", "--config"])
            .arg(&config)
            .env("LTV_TAGGER__ORDERS__PRESET", "magento2")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run check-config");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let fix = "create index ltv_tagger_sales_order_customer_email on sales_order (customer_email)";
    let (code, stdout, stderr) = run().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("from sales_order"), "{stdout}");
    assert!(
        stdout.contains("group by lower(customer_email)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("warning: orders.query reads the whole table sales_order on every lookup (no index serves it); fix: {fix}")),
        "{stderr}"
    );
    db.exec(&[fix.to_owned()]).await;
    let (code, _, stderr) = run().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    db.drop_db().await;
}
