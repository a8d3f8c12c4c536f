//! What the Zendesk worker benchmarks (`bulk.rs`, `backfill.rs`) share: a SQLite shop of `CUSTOMERS` customers, the
//! settings pointing at it and at the fake, and an in-process worker over them.

use std::sync::Arc;

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig};
use ltv_tagger::clock::Millis;
use ltv_tagger::config::{RawSettings, Settings};
use ltv_tagger::domain::{CustomerEmail, Requester, Source, TicketId};
use ltv_tagger::helpdesk::Helpdesks;
use ltv_tagger::metrics::Metrics;
use ltv_tagger::orders::OrderDb;
use ltv_tagger::state::{NewEvent, StateStore};
use ltv_tagger::worker::Worker;
use sqlx::Connection;

/// Customers `c0@shop.test` … of the shop; even ones worth 3000, odd ones 800.
pub const CUSTOMERS: usize = 1000;

/// The environment's `key` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A SQLite order DB of `CUSTOMERS` customers in `dir`, LTVs spread over the tiers.
pub async fn shop(dir: &std::path::Path) -> anyhow::Result<String> {
    let url = format!("sqlite://{}", dir.join("shop.db").display());
    let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await?;
    sqlx::query("create table customer (email text primary key, ltv numeric not null)")
        .execute(&mut c)
        .await?;
    let mut tx = c.begin().await?;
    for i in 0..CUSTOMERS {
        sqlx::query("insert into customer (email, ltv) values ($1, $2)")
            .bind(format!("c{i}@shop.test"))
            .bind(if i % 2 == 0 { 3000 } else { 800 })
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(url)
}

/// Default settings with the state DB at `state_url`, the shop at `shop_url`, Zendesk at the fake
/// paced at `per_minute`; `tweak` changes the rest before validation.
pub fn settings(
    state_url: &str,
    shop_url: &str,
    fake: &FakeHelpdesk,
    cfg: &FakeHelpdeskConfig,
    per_minute: u32,
    tweak: impl FnOnce(&mut RawSettings),
) -> anyhow::Result<Settings> {
    let mut raw = RawSettings::load(None, "LTV_TAGGER_BENCH_NOT_SET")?;
    raw.state.url = state_url.into();
    raw.orders.url = shop_url.into();
    raw.orders.query = "select ltv from customer where email = :email".into();
    fake.serve_zendesk_for(&mut raw, cfg, "bench-secret");
    raw.zendesk.requests_per_minute = per_minute;
    tweak(&mut raw);
    raw.validate().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A worker over `settings` (its state DB migrated), named `bench`.
pub async fn worker(settings: &Settings) -> anyhow::Result<(StateStore, Arc<Worker>)> {
    let store = StateStore::connect_lazy(&settings.state)?;
    store.migrate().await?;
    let metrics = Metrics::new()?;
    let worker = Arc::new(Worker {
        store: store.clone(),
        orders: OrderDb::connect_lazy(&settings.orders_options())?,
        policy: settings.policy.clone().into(),
        helpdesks: Helpdesks::from_settings(settings, &store, &metrics)?,
        metrics,
        settings: settings.worker.clone(),
        owner: "bench".into(),
        wake: Default::default(),
    });
    Ok((store, worker))
}

/// Queues one Zendesk trigger event for ticket `id` from `email` (dedupe key `key`), as the
/// inbox commits a webhook's.
pub async fn enqueue_trigger(
    store: &StateStore,
    id: u64,
    email: &str,
    key: String,
) -> anyhow::Result<()> {
    let event = NewEvent {
        source: Source::Zendesk,
        ticket_id: TicketId::parse(&id.to_string()).map_err(|e| anyhow::anyhow!(e))?,
        event_type: "trigger".into(),
        requester: Some(Requester::Email(
            CustomerEmail::parse(email).map_err(|e| anyhow::anyhow!(e))?,
        )),
        ticket_tags: vec![],
        ticket_updated_at: None,
        dedupe_key: key,
        body: "{}".into(),
    };
    store.enqueue(&event, Millis::now()).await?;
    Ok(())
}
