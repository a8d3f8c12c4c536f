//! `ltv-tagger demo`: the whole flow with nothing to set up. A sample SQLite order database, a
//! fake Zendesk on loopback, the real server and worker; signed webhooks go in, tags come out.

mod fake_zendesk;

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::app::Application;
use crate::config::{RawSettings, Settings};
use crate::http::webhooks::zendesk;
use crate::state::{AuditRow, StateStore};
use fake_zendesk::FakeZendesk;

const DEMO_SECRET: &str = "demo-signing-secret";

/// An order: (total, refunded, status).
type Order = (&'static str, &'static str, &'static str);

/// The sample shop: (email, orders, chargebacks).
const CUSTOMERS: &[(&str, &[Order], u32)] = &[
    (
        "big.spender@example.com",
        &[("1800.00", "0", "paid"), ("1250.00", "50.00", "paid")],
        0,
    ),
    (
        "regular@example.com",
        &[("320.00", "0", "paid"), ("280.00", "50.00", "paid")],
        0,
    ),
    ("disputer@example.com", &[("4000.00", "0", "paid")], 1),
    (
        "newcomer@example.com",
        &[("35.90", "0", "paid"), ("99.00", "0", "pending")],
        0,
    ),
];

/// The tickets the demo opens: (ticket id, requester email as typed in the helpdesk).
const TICKETS: &[(u64, &str)] = &[
    (101, "Big.Spender@Example.com "),
    (102, "regular@example.com"),
    (103, "disputer@example.com"),
    (104, "newcomer@example.com"),
    (105, "stranger@example.com"),
];

/// Creates the sample order database (the schema the default `orders.query` expects).
pub async fn create_sample_shop(path: &std::path::Path) -> anyhow::Result<()> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await?;
    sqlx::query(
        "create table orders (id integer primary key, email text not null, total decimal(12,2) not null,
                              refunded decimal(12,2) not null default 0, status text not null)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("create table chargebacks (id integer primary key, email text not null, amount decimal(12,2))")
        .execute(&pool)
        .await?;
    for (email, orders, chargebacks) in CUSTOMERS {
        for (total, refunded, status) in *orders {
            sqlx::query(
                "insert into orders (email, total, refunded, status) values (?1, ?2, ?3, ?4)",
            )
            .bind(email)
            .bind(total)
            .bind(refunded)
            .bind(status)
            .execute(&pool)
            .await?;
        }
        for _ in 0..*chargebacks {
            sqlx::query("insert into chargebacks (email, amount) values (?1, 100)")
                .bind(email)
                .execute(&pool)
                .await?;
        }
    }
    pool.close().await;
    Ok(())
}

fn demo_settings(
    dir: &std::path::Path,
    fake: &FakeZendesk,
    bind: &str,
) -> anyhow::Result<Settings> {
    let mut raw = RawSettings::load(None, "LTV_TAGGER_DEMO")?;
    raw.server.bind = bind.into();
    raw.state.url = format!("sqlite://{}", dir.join("state.db").display());
    raw.orders.url = format!("sqlite://{}", dir.join("shop.db").display());
    fake.serve_zendesk_for(&mut raw, DEMO_SECRET);
    raw.worker.poll_interval = Duration::from_millis(100);
    Ok(raw.validate()?)
}

pub async fn run(keep_serving: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    create_sample_shop(&dir.path().join("shop.db")).await?;
    let fake = FakeZendesk::start().context("cannot start the fake Zendesk")?;
    // With --keep-serving, listen on the documented port when it is free so curl is easy.
    let bind = if keep_serving && std::net::TcpListener::bind("127.0.0.1:8080").is_ok() {
        "127.0.0.1:8080"
    } else {
        "127.0.0.1:0"
    };
    let settings = demo_settings(dir.path(), &fake, bind)?;
    let state = StateStore::connect_lazy(&settings.state)?;
    let app = Application::build(settings).await?;
    let port = app.port();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    println!(
        "ltv-tagger demo: sample shop in SQLite, fake Zendesk at {}, service on port {port}\n",
        fake.base_url()
    );
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/webhooks/zendesk");
    for (ticket, email) in TICKETS {
        let body = serde_json::json!({
            "ticket_id": ticket.to_string(),
            "requester_email": email,
            "requester_id": "",
            "tags": "web_form",
        })
        .to_string();
        let ts = zendesk::timestamp(chrono::Utc::now());
        let res = http
            .post(&url)
            .header(
                zendesk::SIGNATURE_HEADER,
                zendesk::sign(DEMO_SECRET, &ts, body.as_bytes()),
            )
            .header(zendesk::TIMESTAMP_HEADER, &ts)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            res.status().as_u16() == 202,
            "webhook for ticket {ticket} answered {}",
            res.status()
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let rows: Vec<AuditRow> = loop {
        let rows = state.audit(None, 100).await?;
        if rows.len() >= TICKETS.len() {
            break rows;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the demo tickets were not all processed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    print_table(&rows, &fake);

    if keep_serving {
        println!(
            "\nStill serving on http://127.0.0.1:{port} (Ctrl-C to stop). Send your own webhook:\n\n\
             BODY='{{\"ticket_id\": \"201\", \"requester_email\": \"regular@example.com\"}}'\n\
             TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n\
             SIG=$(printf '%s%s' \"$TS\" \"$BODY\" | openssl dgst -sha256 -hmac '{DEMO_SECRET}' -binary | base64)\n\
             curl -i http://127.0.0.1:{port}/webhooks/zendesk -H \"X-Zendesk-Webhook-Signature: $SIG\" \\\n  \
             -H \"X-Zendesk-Webhook-Signature-Timestamp: $TS\" -H 'Content-Type: application/json' -d \"$BODY\""
        );
        server.await??;
    } else {
        stop.cancel();
        server.await??;
    }
    Ok(())
}

fn print_table(rows: &[AuditRow], fake: &FakeZendesk) {
    println!(
        "{:<7} {:<26} {:>9} {:>8}  {:<16} {:<18} ticket tags at Zendesk",
        "ticket", "customer", "LTV", "disputes", "tags written", "outcome"
    );
    let mut rows = rows.to_vec();
    rows.sort_by_key(|a| a.ticket_id);
    for r in rows {
        let a = &r.record;
        let written = if a.tags_written.is_empty() {
            "-".to_string()
        } else {
            a.tags_written.join(",")
        };
        println!(
            "{:<7} {:<26} {:>9} {:>8}  {:<16} {:<18} {}",
            r.ticket_id,
            a.email.as_deref().unwrap_or("-"),
            a.ltv
                .as_deref()
                .and_then(|l| l.parse::<rust_decimal::Decimal>().ok())
                .map(|l| format!("{l:.2}"))
                .unwrap_or_else(|| "-".into()),
            a.disputes
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            written,
            a.outcome,
            fake.tags(&r.ticket_id.to_string()).join(" ")
        );
    }
}
