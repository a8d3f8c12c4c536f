//! `orders.preset`: each platform's ready-made queries against fixture tables that reproduce its
//! published schema (tests/fixtures/presets/*.sql cite the source of each), on MariaDB for the PHP
//! platforms and PostgreSQL for the synced Shopify tables; and the index check on those schemas.
//!
//! Every fixture seeds the same customers, recorded the platform's own way:
//! - vip@shop.test: 600 paid, 500 paid with 100 refunded (a failed refund does not count), plus
//!   an unpaid and a cancelled (or test) order that do not count → LTV 1000, 2 orders;
//! - Mixed.Case@Shop.Test: 700 paid, looked up in lower case → 700, 1 order;
//! - refunded@shop.test: 300 paid and refunded in full → 0 over 1 order;
//! - disputer@shop.test: 300 paid, one chargeback where the platform records one.

use std::str::FromStr;

use ltv_tagger::config::{RawSettings, Settings};
use ltv_tagger::orders::{CustomerStats, OrderDb};
use rust_decimal::Decimal;
use secrecy::SecretString;
use sqlx::{Connection, Row};

use crate::helpers::{Db, TestDb};

/// A fresh database of `kind` holding the fixture `name` (tests/fixtures/presets/NAME.sql).
async fn platform_db(kind: Db, name: &str) -> TestDb {
    fixture_db(kind, &format!("presets/{name}.sql")).await
}

/// A fresh database of `kind` holding tests/fixtures/PATH (`--` comment lines skipped, statements
/// split at `;`).
pub async fn fixture_db(kind: Db, path: &str) -> TestDb {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let sql: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<String> = sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let db = TestDb::create(kind, "ltv_preset").await;
    db.exec(&statements).await;
    db
}

/// The validated settings for `preset` on `db` (a Zendesk account so the config is complete).
pub fn preset_settings(db: &TestDb, preset: &str, prefix: Option<&str>) -> Settings {
    let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load");
    raw.orders.url = db.url.clone();
    raw.orders.preset = preset.to_owned();
    raw.orders.table_prefix = prefix.map(str::to_owned);
    raw.orders.cache_ttl = std::time::Duration::ZERO;
    raw.zendesk.subdomain = "acme".into();
    raw.zendesk.email = "agent@acme.test".into();
    raw.zendesk.api_token = SecretString::from("token");
    raw.zendesk.webhook_secret = SecretString::from("secret");
    raw.validate().unwrap_or_else(|e| panic!("{e}"))
}

fn stats(ltv: &str, orders: i64, disputes: i64) -> Option<CustomerStats> {
    Some(CustomerStats {
        ltv: Decimal::from_str(ltv).expect("decimal literal"),
        orders,
        disputes,
        ..Default::default()
    })
}

/// A whole-number column, whichever width the database gave it.
fn int(wide: Result<i64, sqlx::Error>, narrow: impl FnOnce() -> Result<i32, sqlx::Error>) -> i64 {
    wide.or_else(|_| narrow().map(i64::from))
        .expect("a whole number")
}

/// `orders.customers_query` rows as (email, ltv, orders, disputes), sorted by email.
async fn customers(db: &TestDb, sql: &str) -> Vec<(String, Decimal, i64, i64)> {
    let mut found = match db.kind {
        Db::Mariadb => {
            let mut c = sqlx::MySqlConnection::connect(&db.url)
                .await
                .expect("connect");
            let rows = sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .expect("customers_query");
            rows.iter()
                .map(|r| {
                    (
                        r.try_get::<String, _>("email").expect("email"),
                        r.try_get::<Decimal, _>("ltv").expect("ltv"),
                        int(r.try_get::<i64, _>("orders"), || {
                            r.try_get::<i32, _>("orders")
                        }),
                        int(r.try_get::<i64, _>("disputes"), || {
                            r.try_get::<i32, _>("disputes")
                        }),
                    )
                })
                .collect::<Vec<_>>()
        }
        _ => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let rows = sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .expect("customers_query");
            rows.iter()
                .map(|r| {
                    (
                        r.try_get::<String, _>("email").expect("email"),
                        r.try_get::<Decimal, _>("ltv").expect("ltv"),
                        int(r.try_get::<i64, _>("orders"), || {
                            r.try_get::<i32, _>("orders")
                        }),
                        int(r.try_get::<i64, _>("disputes"), || {
                            r.try_get::<i32, _>("disputes")
                        }),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    found.sort();
    found
}

/// The lookups and the customers report for one platform; `disputes` is what the platform records
/// for disputer@shop.test.
async fn preset_reads_net_ltv_paid_orders_and_disputes(
    kind: Db,
    preset: &str,
    prefix: Option<&str>,
    disputes: i64,
) {
    let db = platform_db(kind, preset).await;
    let settings = preset_settings(&db, preset, prefix);
    let orders = OrderDb::connect_lazy(&settings.orders_options()).expect("valid options");
    orders.check_query().await.expect("check_query");
    let lookups = [
        ("vip@shop.test", stats("1000", 2, 0)),
        ("mixed.case@shop.test", stats("700", 1, 0)),
        ("refunded@shop.test", stats("0", 1, 0)),
        ("disputer@shop.test", stats("300", 1, disputes)),
        ("nobody@shop.test", stats("0", 0, 0)),
    ];
    for (email, expected) in lookups {
        assert_eq!(
            orders.lookup(email).await.unwrap(),
            expected,
            "{preset}: {email}"
        );
    }
    let one = |email: &str, ltv: &str, orders: i64, disputes: i64| {
        (
            email.to_owned(),
            Decimal::from_str(ltv).expect("decimal"),
            orders,
            disputes,
        )
    };
    assert_eq!(
        customers(&db, &settings.orders.customers_query).await,
        vec![
            one("disputer@shop.test", "300", 1, disputes),
            one("mixed.case@shop.test", "700", 1, 0),
            one("refunded@shop.test", "0", 1, 0),
            one("vip@shop.test", "1000", 2, 0),
        ],
        "{preset}: customers_query"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn woocommerce_preset_nets_refund_orders_on_mariadb() {
    preset_reads_net_ltv_paid_orders_and_disputes(Db::Mariadb, "woocommerce", None, 0).await;
}

#[tokio::test]
async fn woocommerce_legacy_preset_reads_posts_and_postmeta_on_mariadb() {
    preset_reads_net_ltv_paid_orders_and_disputes(Db::Mariadb, "woocommerce-legacy", None, 0).await;
}

#[tokio::test]
async fn magento2_preset_nets_base_total_refunded_on_mariadb() {
    preset_reads_net_ltv_paid_orders_and_disputes(Db::Mariadb, "magento2", None, 0).await;
}

#[tokio::test]
async fn prestashop_preset_nets_order_slips_across_guest_accounts_on_mariadb() {
    preset_reads_net_ltv_paid_orders_and_disputes(Db::Mariadb, "prestashop", None, 0).await;
}

#[tokio::test]
async fn shopify_fivetran_preset_nets_refund_transactions_on_postgres() {
    preset_reads_net_ltv_paid_orders_and_disputes(Db::Postgres, "shopify-fivetran", None, 0).await;
}

#[tokio::test]
async fn shopify_airbyte_preset_nets_refunds_and_counts_chargebacks_on_postgres() {
    preset_reads_net_ltv_paid_orders_and_disputes(Db::Postgres, "shopify-airbyte", None, 1).await;
}

#[tokio::test]
async fn table_prefix_points_a_preset_at_renamed_tables() {
    let db = platform_db(Db::Mariadb, "magento2").await;
    db.exec(&["rename table sales_order to m2_sales_order".to_owned()])
        .await;
    let settings = preset_settings(&db, "magento2", Some("m2_"));
    let orders = OrderDb::connect_lazy(&settings.orders_options()).expect("valid options");
    assert_eq!(
        orders.lookup("vip@shop.test").await.unwrap(),
        stats("1000", 2, 0)
    );
    db.drop_db().await;
}

/// What the index check says on `db` for the settings' query: (table, fix) per scanned table.
async fn scans(settings: &Settings) -> Vec<(String, String)> {
    let orders = OrderDb::connect_lazy(&settings.orders_options()).expect("valid options");
    orders
        .whole_table_scans(&settings.index_advice())
        .await
        .expect("explain")
        .into_iter()
        .map(|w| (w.table, w.fix))
        .collect()
}

#[tokio::test]
async fn index_check_is_silent_on_the_indexes_woocommerce_hpos_and_prestashop_ship_on_mariadb() {
    for preset in ["woocommerce", "prestashop"] {
        let db = platform_db(Db::Mariadb, preset).await;
        assert_eq!(
            scans(&preset_settings(&db, preset, None)).await,
            vec![],
            "{preset}"
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn index_check_prints_the_missing_email_index_until_it_exists_on_mariadb() {
    for (preset, table, fix) in [
        (
            "magento2",
            "sales_order",
            "create index ltv_tagger_sales_order_customer_email on sales_order (customer_email)",
        ),
        (
            "woocommerce-legacy",
            "wp_postmeta",
            "create index ltv_tagger_wp_postmeta_billing_email on wp_postmeta (meta_key(32), meta_value(191))",
        ),
    ] {
        let db = platform_db(Db::Mariadb, preset).await;
        let settings = preset_settings(&db, preset, None);
        assert_eq!(
            scans(&settings).await,
            vec![(table.to_owned(), fix.to_owned())],
            "{preset}"
        );
        db.exec(&[fix.to_owned()]).await;
        assert_eq!(scans(&settings).await, vec![], "{preset} with the index");
        db.drop_db().await;
    }
}

#[tokio::test]
async fn index_check_prints_the_shopify_sync_indexes_until_they_exist_on_postgres() {
    for (preset, expected) in [
        (
            "shopify-fivetran",
            vec![
                ("shopify.\"order\"", "create index ltv_tagger_order_email on shopify.\"order\" ((lower(email)))"),
                ("shopify.\"transaction\"", "create index ltv_tagger_transaction_order_id on shopify.\"transaction\" (order_id)"),
            ],
        ),
        (
            "shopify-airbyte",
            vec![
                ("orders", "create index ltv_tagger_orders_email on orders ((lower(email)))"),
                ("transactions", "create index ltv_tagger_transactions_order_id on transactions (order_id)"),
                ("disputes", "create index ltv_tagger_disputes_order_id on disputes (order_id)"),
            ],
        ),
    ] {
        let db = platform_db(Db::Postgres, preset).await;
        let settings = preset_settings(&db, preset, None);
        let mut found = scans(&settings).await;
        found.sort();
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|(t, f)| (t.to_string(), f.to_string()))
            .collect();
        want.sort();
        assert_eq!(found, want, "{preset}");
        let fixes: Vec<String> = want.into_iter().map(|(_, f)| f).collect();
        db.exec(&fixes).await;
        assert_eq!(scans(&settings).await, vec![], "{preset} with the indexes");
        db.drop_db().await;
    }
}
