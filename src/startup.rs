//! Builds the application from settings: state store, order DB, helpdesk clients, HTTP server,
//! workers. `Application::build` binds the listener (port 0 allowed) so tests start the real thing.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, ZENDESK_TEST_SECRET};
use crate::helpdesk::{GorgiasClient, ZendeskClient};
use crate::metrics::Metrics;
use crate::orders::OrderDb;
use crate::store::{now_ms, StateStore};
use crate::webhooks::{self, zendesk::SignatureKeys};
use crate::worker::{self, WorkerContext};

/// What the HTTP handlers share.
pub struct AppState {
    pub store: StateStore,
    pub orders: OrderDb,
    pub metrics: Metrics,
    pub zendesk_keys: Option<SignatureKeys>,
    pub gorgias_token: Option<SecretString>,
    pub max_body_bytes: usize,
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

pub struct Application {
    port: u16,
    server: Server,
    worker: Arc<WorkerContext>,
    shutdown: CancellationToken,
    grace: Duration,
    drain_delay: Duration,
    draining: Arc<AtomicBool>,
    retention: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = Metrics::new()?;
        let store = StateStore::connect_lazy(&settings.state)?;
        if settings.state.migrate_on_start {
            store
                .migrate()
                .await
                .context("state DB: cannot migrate at start (is state.url reachable?)")?;
        }
        let orders = OrderDb::connect_lazy(&settings.orders_options())?
            .with_latency_histogram(metrics.order_lookup_seconds.clone());

        let zendesk = settings
            .zendesk
            .as_ref()
            .map(|z| ZendeskClient::new(z, store.clone(), metrics.clone()))
            .transpose()?;
        let gorgias = settings
            .gorgias
            .as_ref()
            .map(|g| GorgiasClient::new(g, store.clone(), metrics.clone()))
            .transpose()?;
        let wake = Arc::new(Notify::new());
        let draining = Arc::new(AtomicBool::new(false));

        let state = web::Data::new(AppState {
            store: store.clone(),
            orders: orders.clone(),
            metrics: metrics.clone(),
            zendesk_keys: settings.zendesk.as_ref().map(|z| SignatureKeys {
                secret: z.webhook_secret.clone(),
                test_secret: z
                    .dangerous_accept_test_secret
                    .then(|| SecretString::from(ZENDESK_TEST_SECRET.to_string())),
                tolerance: z.timestamp_tolerance,
            }),
            gorgias_token: settings.gorgias.as_ref().map(|g| g.webhook_token.clone()),
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: settings.server.request_timeout,
            dedupe_window: settings.state.dedupe_window,
            wake_workers: wake.clone(),
            draining: draining.clone(),
            main: tokio::runtime::Handle::current(),
        });

        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("server.bind: cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let grace = settings.server.shutdown_grace;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .service(
                    web::resource("/webhooks/zendesk")
                        .route(web::post().to(webhooks::zendesk_webhook)),
                )
                .service(
                    web::resource("/webhooks/gorgias")
                        .route(web::post().to(webhooks::gorgias_webhook)),
                )
                .route("/livez", web::get().to(livez))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        .disable_signals()
        .max_connections(settings.server.max_connections)
        .client_request_timeout(settings.server.request_timeout)
        .client_disconnect_timeout(Duration::from_secs(2))
        .shutdown_timeout(grace.as_secs().max(1))
        .run();

        let worker = Arc::new(WorkerContext {
            store,
            orders,
            policy: settings.policy.clone(),
            zendesk,
            gorgias,
            metrics,
            settings: settings.worker.clone(),
            owner: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "ltv-tagger".into()),
                uuid::Uuid::new_v4().simple()
            ),
            wake,
        });
        Ok(Application {
            port,
            server,
            worker,
            shutdown: CancellationToken::new(),
            grace,
            drain_delay: settings.server.drain_delay,
            draining,
            retention: settings.state.retention,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to stop the application as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves and works until SIGTERM/SIGINT (or the shutdown token): then stops accepting, lets
    /// in-flight requests and jobs finish within the grace period and releases what is left.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let worker = tokio::spawn(worker::run(
            self.worker.clone(),
            self.shutdown.clone(),
            self.grace,
        ));
        let maintenance = tokio::spawn(maintain(
            self.worker.store.clone(),
            self.retention,
            self.shutdown.clone(),
        ));
        tracing::info!(port = self.port, "ltv-tagger serving");

        wait_for_stop(&self.shutdown).await;
        if !self.drain_delay.is_zero() {
            tracing::info!(drain_delay = ?self.drain_delay, "draining: /readyz fails, requests still accepted");
            self.draining.store(true, Ordering::SeqCst);
            tokio::time::sleep(self.drain_delay).await;
        }
        tracing::info!(grace = ?self.grace, "shutting down: no new requests");
        // Stop accepting, let the workers finish or release their jobs, then stop the server:
        // requests already received complete meanwhile.
        let deadline = tokio::time::Instant::now() + self.grace;
        handle.pause().await;
        self.shutdown.cancel();
        let _ = worker.await;
        // One grace period in all: requests still running by then are cut off.
        if tokio::time::timeout_at(deadline, handle.stop(true))
            .await
            .is_err()
        {
            handle.stop(false).await;
        }
        let _ = server.await;
        let _ = maintenance.await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn wait_for_stop(token: &CancellationToken) {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = token.cancelled() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Hourly pruning of finished jobs and old inbox rows.
async fn maintain(store: StateStore, retention: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        match store.prune(retention, now_ms()).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned finished jobs and inbox rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "prune failed"),
        }
    }
}

async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "up" }))
}

#[derive(serde::Deserialize)]
struct ReadyQuery {
    /// `ingest`: only what accepting webhooks needs (the state DB).
    scope: Option<String>,
}

/// `/readyz`: state DB reachable and migrated, order DB reachable. `?scope=ingest` skips the
/// order DB: webhooks are still accepted (and queued) while the shop's database is down.
async fn readyz(state: web::Data<AppState>, q: web::Query<ReadyQuery>) -> HttpResponse {
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("down: {e}"),
    };
    if state.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(json!({ "status": "draining" }));
    }
    let ingest_only = q.scope.as_deref() == Some("ingest");
    let (store, db) = (state.store.clone(), state.orders.clone());
    let checked = state
        .on_main(async move {
            if ingest_only {
                (store.check_ready().await, Ok(()))
            } else {
                let (st, orders) = tokio::join!(store.check_ready(), db.ping());
                (st, orders.map_err(|e| e.to_string()))
            }
        })
        .await;
    let (st, orders) = checked.unwrap_or_else(|e| (Err(e.to_string()), Err(e.to_string())));
    let body = if ingest_only {
        json!({ "state_db": show(&st) })
    } else {
        json!({ "state_db": show(&st), "order_db": show(&orders) })
    };
    if st.is_ok() && orders.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    if let Ok(Ok(d)) = state
        .on_main(async move { store.queue_depth().await })
        .await
    {
        let g = &state.metrics.jobs_in_state;
        g.with_label_values(&["queued"]).set(d.queued);
        g.with_label_values(&["running"]).set(d.running);
        g.with_label_values(&["dead"]).set(d.dead);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "no such route" }))
}
