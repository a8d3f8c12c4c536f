//! The HTTP layer: routes, and the state every handler shares.
//!
//! `webhooks/` is the ingest path; `health.rs` answers `/livez` and `/readyz`; `metrics.rs`
//! renders `/metrics`; `server.rs` is the HTTP/1 server over `paced_read.rs` streams (read one
//! turn per poll); `connection.rs` closes a connection refused under overload at once.

mod connection;
mod health;
mod metrics;
mod paced_read;
pub mod server;
pub mod webhooks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::orders::OrderDb;
use crate::state::{GroupCommitter, StateStore};
use webhooks::zendesk::SignatureKeys;

/// What the HTTP handlers share.
pub struct AppState {
    pub store: StateStore,
    /// Commits webhook events in groups (see `state/group_commit.rs`).
    pub committer: GroupCommitter,
    pub orders: OrderDb,
    pub metrics: Metrics,
    pub zendesk_keys: Option<SignatureKeys>,
    /// `zendesk.event_types`: the event-subscription types queued; others are answered `ignored`.
    pub zendesk_event_types: Vec<String>,
    pub gorgias_token: Option<SecretString>,
    pub max_body_bytes: usize,
    /// Bytes all unverified webhook bodies may hold at once (`server.unverified_body_budget_bytes`).
    pub body_budget: webhooks::body_budget::BodyBudget,
    pub body_timeout: Duration,
    pub dedupe_window: Duration,
    pub wake_workers: Arc<Notify>,
    /// Set on SIGTERM: `/readyz` fails so load balancers stop sending, while ingest still works.
    pub draining: Arc<AtomicBool>,
    /// The main runtime. actix runs handlers on per-thread runtimes that die at shutdown; a pooled
    /// DB connection opened there would die with them while workers still need it. So handlers
    /// run their DB calls here, and every pooled connection belongs to the main runtime.
    pub main: tokio::runtime::Handle,
}

impl AppState {
    /// Runs a DB call on the main runtime (see [`AppState::main`]).
    pub async fn on_main<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.main
            .spawn(fut)
            .await
            .map_err(|e| anyhow::anyhow!("task failed: {e}"))
    }
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks/zendesk").route(web::post().to(webhooks::zendesk_webhook)),
    )
    .service(web::resource("/webhooks/gorgias").route(web::post().to(webhooks::gorgias_webhook)))
    .route("/livez", web::get().to(health::livez))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(metrics::metrics_text))
    .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "no such route" }))
}
