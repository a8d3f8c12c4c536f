//! `thresholds`: the figures an operator sets tiers from, checked against sums worked out here
//! from the seeded rows, on every order-DB backend; the candidate what-if; the plot files.

use std::path::Path;
use std::str::FromStr;

use ltv_tagger::clock::Millis;
use ltv_tagger::config::StateSettings;
use ltv_tagger::state::StateStore;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::helpers::{cli, Db, TestDb};

/// Every customer of our shop schema (purchases − refunds, disputes in their own table).
const CUSTOMERS_QUERY: &str = "
select c.email as email,
       coalesce((select sum(p.amount) from purchase p
                 where p.customer_id = c.id and p.status = 'paid'), 0)
       - coalesce((select sum(r.amount) from refund r join purchase p on p.id = r.purchase_id
                   where p.customer_id = c.id), 0) as ltv,
       (select count(*) from purchase p where p.customer_id = c.id and p.status = 'paid') as orders,
       (select count(*) from dispute d where d.customer_id = c.id) as disputes
from customer c";

/// One seeded customer: its LTV (paid − refunded) and disputes, as this test computes them.
struct Seeded {
    ltv: Decimal,
    disputes: i64,
}

/// 150 customers with spread-out LTVs, refunds, pending orders and a few disputers.
async fn seed(kind: Db) -> (TestDb, Vec<Seeded>) {
    let db = TestDb::create(kind, "ltv_thr").await;
    let money = if kind == Db::Postgres {
        "numeric(12,2)"
    } else {
        "decimal(12,2)"
    };
    let mut sql = vec![
        "create table customer (id integer primary key, email varchar(200) not null)".to_string(),
        format!("create table purchase (id integer primary key, customer_id integer not null, amount {money} not null, status varchar(20) not null)"),
        format!("create table refund (id integer primary key, purchase_id integer not null, amount {money} not null)"),
        "create table dispute (id integer primary key, customer_id integer not null)".to_string(),
    ];
    let mut seeded = Vec::new();
    let (mut pid, mut rid, mut did) = (0, 0, 0);
    for c in 1..=150i64 {
        sql.push(format!(
            "insert into customer (id, email) values ({c}, 'c{c}@shop.test')"
        ));
        // Amounts in cents, spread over 0.50 … ~5000 (quadratic, so the top is long-tailed).
        let cents = (c * c * 23) % 500_000 + 50;
        let amount = Decimal::new(cents, 2);
        pid += 1;
        sql.push(format!("insert into purchase (id, customer_id, amount, status) values ({pid}, {c}, {amount}, 'paid')"));
        let mut ltv = amount;
        if c % 7 == 0 {
            rid += 1;
            let refund = Decimal::new(cents / 4, 2);
            sql.push(format!(
                "insert into refund (id, purchase_id, amount) values ({rid}, {pid}, {refund})"
            ));
            ltv -= refund;
        }
        if c % 5 == 0 {
            pid += 1;
            sql.push(format!("insert into purchase (id, customer_id, amount, status) values ({pid}, {c}, 999.00, 'pending')"));
        }
        let disputes = i64::from(c % 13 == 0);
        if disputes > 0 {
            did += 1;
            sql.push(format!(
                "insert into dispute (id, customer_id) values ({did}, {c})"
            ));
        }
        seeded.push(Seeded { ltv, disputes });
    }
    db.exec(&sql).await;
    (db, seeded)
}

const POLICY: &str = r#"
[policy]
dispute_tag = "dispute"
dispute_overrides_vip = true
vip_tiers = [ { tag = "vip", min_ltv = "1000" }, { tag = "vip-gold", min_ltv = "3000" } ]
"#;

const CANDIDATE: &str = r#"
[policy]
dispute_tag = "dispute"
dispute_overrides_vip = true
vip_tiers = [ { tag = "vip", min_ltv = "800" }, { tag = "vip-gold", min_ltv = "3500" } ]
"#;

/// The tags a policy with these thresholds gives (dispute override on), worked out here.
fn tags(vip: i64, gold: i64, ltv: Decimal, disputes: i64) -> Vec<String> {
    if disputes > 0 {
        return vec!["dispute".into()];
    }
    if ltv >= Decimal::from(gold) {
        vec!["vip-gold".into()]
    } else if ltv >= Decimal::from(vip) {
        vec!["vip".into()]
    } else {
        vec![]
    }
}

/// SQLite sums decimals as floats: there the query spells the LTV as exact text, as a shop would.
fn customers_query(kind: Db) -> String {
    match kind {
        Db::Sqlite => format!(
            "select email, printf('%.2f', ltv) as ltv, orders, disputes from ({CUSTOMERS_QUERY}) q"
        ),
        _ => CUSTOMERS_QUERY.to_owned(),
    }
}

fn config(dir: &Path, shop: &TestDb, state_url: &str) -> std::path::PathBuf {
    let path = dir.join("ltv-tagger.toml");
    std::fs::write(
        &path,
        format!(
            "[state]\nurl = {state_url:?}\n[orders]\nurl = {:?}\ncustomers_query = {:?}\n{POLICY}",
            shop.url,
            customers_query(shop.kind)
        ),
    )
    .expect("config");
    path
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not a decimal string")),
    )
    .expect("decimal")
}

fn near(v: &Value, expected: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {v} is not a number"));
    assert!((got - expected).abs() < 1e-9, "{what}: {got} ≠ {expected}");
}

/// Seeds the state DB's audit log with two recent decisions and one older than `--since`.
async fn seed_audit(state_url: &str) {
    let mut settings: StateSettings =
        ltv_tagger::config::RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET")
            .expect("defaults")
            .state;
    settings.url = state_url.to_owned();
    let store = StateStore::connect_lazy(&settings).expect("store");
    store.migrate().await.expect("migrate");
    let now = Millis::now().as_epoch_ms();
    let day = 86_400_000i64;
    // (ticket, ltv, disputes, tags decided, age in days)
    let rows = [
        (1, "900.00", 0, "", 1),
        (2, "3200.00", 0, "vip-gold", 2),
        (3, "900.00", 0, "", 40),
    ];
    for (ticket, ltv, disputes, tags, age) in rows {
        sqlx::query(
            "insert into audit (job_id, source, ticket_id, email, ltv, orders, disputes, tags_decided,
                                tags_written, outcome, detail, attempts, event_count, created_at, updated_at)
             values ($1, 'zendesk', $2, 'x@shop.test', $3, 1, $4, $5, $5, 'tagged', null, 1, 1, $6, $6)",
        )
        .bind(ticket as i64)
        .bind(ticket.to_string())
        .bind(ltv)
        .bind(disputes as i64)
        .bind(tags)
        .bind(now - age * day)
        .execute(store.pool())
        .await
        .expect("insert audit");
    }
    store.pool().close().await;
}

async fn the_figures_equal_those_worked_out_from_the_seeded_rows(kind: Db) {
    let (shop, seeded) = seed(kind).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    seed_audit(&state_url).await;
    let cfg = config(dir.path(), &shop, &state_url);
    let candidate = dir.path().join("candidate.toml");
    std::fs::write(&candidate, CANDIDATE).expect("candidate");
    let (code, out, err) = cli(
        &[
            "thresholds",
            "--format",
            "json",
            "--candidate",
            candidate.to_str().expect("utf-8"),
        ],
        &cfg,
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let f: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

    let n = seeded.len();
    let revenue: Decimal = seeded.iter().map(|s| s.ltv).sum();
    assert_eq!(f["customers"], n as u64);
    assert_eq!(dec(&f["revenue"]), revenue);

    // Per tier, the disputers and the untagged, under the current policy.
    for (tier, tag) in [(0, "vip-gold"), (1, "vip")] {
        let t = &f["current"]["tiers"][tier];
        assert_eq!(t["tag"], tag);
        let members: Vec<&Seeded> = seeded
            .iter()
            .filter(|s| tags(1000, 3000, s.ltv, s.disputes) == [tag])
            .collect();
        assert_eq!(t["customers"], members.len() as u64, "{tag}");
        near(&t["customer_share"], members.len() as f64 / n as f64, tag);
        let rev: Decimal = members.iter().map(|s| s.ltv).sum();
        near(
            &t["revenue_share"],
            (rev / revenue).to_f64().unwrap_or(0.0),
            tag,
        );
    }
    let disputers = seeded.iter().filter(|s| s.disputes > 0).count() as u64;
    assert_eq!(f["current"]["disputers"]["customers"], disputers);
    assert_eq!(f["current"]["disputers"]["tag"], "dispute");
    let untagged = seeded
        .iter()
        .filter(|s| tags(1000, 3000, s.ltv, s.disputes).is_empty())
        .count();
    assert_eq!(f["current"]["untagged"]["customers"], untagged as u64);
    assert!(
        seeded
            .iter()
            .any(|s| s.disputes > 0 && s.ltv >= Decimal::from(3000)),
        "the seed must hold a rich disputer, removed from vip-gold by the override"
    );

    // Percentiles (nearest rank) and where the top shares start.
    let mut sorted: Vec<Decimal> = seeded.iter().map(|s| s.ltv).collect();
    sorted.sort();
    let rank = |k: usize| ((k * n).div_ceil(100)).max(1);
    for k in [50, 75, 90, 95, 99] {
        assert_eq!(
            dec(&f["distribution"]["percentiles"][format!("p{k}")]),
            sorted[rank(k) - 1],
            "p{k}"
        );
    }
    for k in [1, 5, 10, 20] {
        assert_eq!(
            dec(&f["distribution"]["top_starts_at"][format!("top_{k}pct")]),
            sorted[n - rank(k)],
            "top {k} %"
        );
    }
    let mut sum = Decimal::ZERO;
    let mut top = 0;
    for (i, ltv) in sorted.iter().rev().enumerate() {
        sum += ltv;
        if sum >= revenue * Decimal::new(8, 1) {
            top = i + 1;
            break;
        }
    }
    assert_eq!(f["distribution"]["revenue_80pct"]["customers"], top as u64);
    assert_eq!(
        dec(&f["distribution"]["revenue_80pct"]["min_ltv"]),
        sorted[n - top]
    );

    // The candidate: who moves, and which of the two recent tickets (40 days is too old) change.
    assert_eq!(f["recent_tickets"]["tickets"], 2);
    assert_eq!(f["current"]["recent_tickets"]["(none)"], 1);
    assert_eq!(f["current"]["recent_tickets"]["vip-gold"], 1);
    // 900.00 (untagged now) and 3200.00 (vip-gold now) are both vip under the candidate.
    assert_eq!(f["candidate"]["recent_tickets"]["vip"], 2);
    let mut expected: std::collections::BTreeMap<(Vec<String>, Vec<String>), u64> =
        Default::default();
    for s in &seeded {
        let (from, to) = (
            tags(1000, 3000, s.ltv, s.disputes),
            tags(800, 3500, s.ltv, s.disputes),
        );
        if from != to {
            *expected.entry((from, to)).or_default() += 1;
        }
    }
    let changes = f["changes"].as_array().expect("changes");
    for c in changes {
        let key: (Vec<String>, Vec<String>) = (
            serde_json::from_value(c["from"].clone()).expect("from"),
            serde_json::from_value(c["to"].clone()).expect("to"),
        );
        let customers = expected.remove(&key).unwrap_or(0);
        assert_eq!(c["customers"], customers, "{key:?}");
        // 900.00 is untagged now and vip under the candidate; 3200.00 drops from gold to vip.
        let tickets = u64::from(
            key == (vec![], vec!["vip".into()])
                || key == (vec!["vip-gold".into()], vec!["vip".into()]),
        );
        assert_eq!(c["tickets"], tickets, "{key:?}");
    }
    assert!(expected.is_empty(), "changes missing: {expected:?}");
    shop.drop_db().await;
}

#[tokio::test]
async fn thresholds_json_figures_equal_those_computed_from_the_rows_on_sqlite() {
    the_figures_equal_those_worked_out_from_the_seeded_rows(Db::Sqlite).await;
}

#[tokio::test]
async fn thresholds_json_figures_equal_those_computed_from_the_rows_on_postgres() {
    the_figures_equal_those_worked_out_from_the_seeded_rows(Db::Postgres).await;
}

#[tokio::test]
async fn thresholds_json_figures_equal_those_computed_from_the_rows_on_mariadb() {
    the_figures_equal_those_worked_out_from_the_seeded_rows(Db::Mariadb).await;
}

#[tokio::test]
async fn thresholds_plot_writes_a_valid_svg_and_png_and_the_text_report_names_every_tier() {
    let (shop, _) = seed(Db::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    let cfg = config(dir.path(), &shop, &state_url);
    for ext in ["svg", "png"] {
        let path = dir.path().join(format!("ltv.{ext}"));
        let (code, out, err) = cli(
            &["thresholds", "--plot", path.to_str().expect("utf-8")],
            &cfg,
        )
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("vip-gold") && out.contains("p95"), "{out}");
        let bytes = std::fs::read(&path).expect("plot written");
        if ext == "svg" {
            let text = String::from_utf8(bytes).expect("svg is text");
            assert!(
                text.trim_start().starts_with("<svg"),
                "{}",
                &text[..80.min(text.len())]
            );
            assert!(text.trim_end().ends_with("</svg>"));
            assert!(
                text.contains("vip-gold ≥ 3000"),
                "the tier line is labelled"
            );
            assert!(text.contains("lifetime value"), "the axis is labelled");
        } else {
            let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
            let reader = decoder.read_info().expect("a valid PNG");
            assert_eq!((reader.info().width, reader.info().height), (1200, 700));
        }
    }
    let bad = dir.path().join("ltv.gif");
    let (code, _, err) = cli(
        &["thresholds", "--plot", bad.to_str().expect("utf-8")],
        &cfg,
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--plot") && err.contains(".svg or .png"),
        "{err}"
    );
}

#[tokio::test]
async fn thresholds_without_a_customers_query_or_with_a_bad_one_names_the_key() {
    let (shop, _) = seed(Db::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("[orders]\nurl = {:?}\n", shop.url)).expect("config");
    let (code, _, err) = cli(&["thresholds"], &path).await;
    assert_eq!(code, 1);
    assert!(err.contains("orders.customers_query: not set"), "{err}");

    std::fs::write(
        &path,
        format!(
            "[orders]\nurl = {:?}\ncustomers_query = \"select email, 'x' as ltv from customer\"\n",
            shop.url
        ),
    )
    .expect("config");
    let (code, _, err) = cli(&["thresholds"], &path).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("orders.customers_query:") && err.contains("`ltv`"),
        "{err}"
    );
    // check-config --query runs it too (with a helpdesk, as `serve` needs one).
    std::fs::write(
        &path,
        format!(
            "[orders]\nurl = {:?}\nquery = \"select 1 as ltv from customer where email = :email\"\n\
             customers_query = \"select email, 'x' as ltv from customer\"\n\
             [zendesk]\nsubdomain = \"acme\"\nemail = \"agent@acme.com\"\napi_token = \"t\"\nwebhook_secret = \"s\"\n",
            shop.url
        ),
    )
    .expect("config");
    let (code, _, err) = cli(&["check-config", "--query"], &path).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("orders.query ran"), "{err}");
    assert!(
        err.contains("orders.customers_query:") && err.contains("`ltv`"),
        "{err}"
    );

    std::fs::write(
        &path,
        format!("[orders]\nurl = {:?}\ncustomers_query = \"select email, 1 as ltv from customer where email = :email\"\n", shop.url),
    )
    .expect("config");
    let (code, _, err) = cli(&["thresholds"], &path).await;
    assert_eq!(code, 2, "an invalid configuration");
    assert!(
        err.contains("orders.customers_query: takes no :email"),
        "{err}"
    );
}
