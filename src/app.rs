//! The composition root: builds the state store, order DB, helpdesk clients, HTTP server and
//! workers from settings; runs them until stopped, and stops them in order (drain, stop
//! accepting, let workers finish or release their leases, stop the server).
//! `Application::build` binds the listener (port 0 allowed) so tests start the real thing.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context;
use secrecy::SecretString;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{RawSettings, Settings, ZENDESK_TEST_SECRET};
use crate::helpdesk::Helpdesks;
use crate::http::webhooks::zendesk::SignatureKeys;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::orders::{OrderDb, OrdersError};
use crate::reload::Reloader;
use crate::state::{self, GroupCommitSettings, GroupCommitter, StateStore};
use crate::worker::Worker;

pub struct Application {
    port: u16,
    server: Server,
    worker: Arc<Worker>,
    shutdown: CancellationToken,
    grace: Duration,
    drain_delay: Duration,
    draining: Arc<AtomicBool>,
    retention: Duration,
    reloader: Option<Reloader>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = Metrics::new()?;
        if settings
            .zendesk
            .as_ref()
            .is_some_and(|z| z.dangerous_accept_test_secret)
        {
            tracing::warn!(
                "zendesk.dangerous_accept_test_secret is on: webhooks signed with Zendesk's public test secret are accepted, and anyone can forge those; counted in ltv_tagger_zendesk_test_signed_total"
            );
        }
        let store = StateStore::connect_lazy(&settings.state)?;
        if settings.state.migrate_on_start {
            store
                .migrate()
                .await
                .context("state DB: cannot migrate at start (is state.url reachable?)")?;
        }
        let orders = OrderDb::connect_lazy(&settings.orders_options())?
            .with_latency_histogram(metrics.order_lookup_seconds.clone());
        // A broken query stops the start; an order DB that is down does not (/readyz says so).
        match orders.check_columns().await {
            Ok(()) => {}
            Err(e @ (OrdersError::Unavailable { .. } | OrdersError::Timeout { .. })) => {
                tracing::warn!(error = %e, "order DB not reachable at start: orders.query is checked when it is (see /readyz)")
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context("orders.query does not fit the order DB; fix it and start again"))
            }
        }
        crate::policy::check_columns_at_start(&settings.policy, &orders).await?;

        let helpdesks = Helpdesks::from_settings(&settings, &store, &metrics)?;
        let wake = Arc::new(Notify::new());
        let draining = Arc::new(AtomicBool::new(false));

        // Spawned here, on the main runtime, which owns every pooled connection.
        let committer = GroupCommitter::spawn(
            store.clone(),
            GroupCommitSettings {
                window: settings.state.group_commit_window,
                max_batch: settings.state.group_commit_max_batch,
                parallel: match store.backend() {
                    state::Backend::Sqlite => 1,
                    // A quarter of the pool (2 of the default 10): a batch is one round trip,
                    // so fewer batches at once gather more events each (BENCHMARKS.md).
                    state::Backend::Postgres => {
                        (settings.state.max_connections as usize / 4).clamp(1, 8)
                    }
                },
            },
            Some(metrics.ingest_commit_batch_size.clone()),
        );
        let state = web::Data::new(AppState {
            store: store.clone(),
            committer,
            orders: orders.clone(),
            metrics: metrics.clone(),
            zendesk_keys: settings.zendesk.as_ref().map(|z| SignatureKeys {
                secret: z.webhook_secret.clone(),
                test_secret: z
                    .dangerous_accept_test_secret
                    .then(|| SecretString::from(ZENDESK_TEST_SECRET.to_string())),
                tolerance: z.timestamp_tolerance,
            }),
            zendesk_event_types: settings
                .zendesk
                .as_ref()
                .map(|z| z.event_types.clone())
                .unwrap_or_default(),
            gorgias_token: settings.gorgias.as_ref().map(|g| g.webhook_token.clone()),
            max_body_bytes: settings.server.max_body_bytes,
            body_budget: crate::http::webhooks::body_budget::BodyBudget::new(
                settings.server.unverified_body_budget_bytes,
            ),
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
        let server = http::server::serve(
            listener,
            state,
            http::server::ServerSettings {
                max_connections: settings.server.max_connections,
                head_timeout: settings.server.head_timeout,
                shutdown_grace: grace,
            },
        )?;

        let worker = Arc::new(Worker {
            store,
            orders,
            policy: settings.policy.clone().into(),
            helpdesks,
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
            reloader: None,
        })
    }

    /// Reload the `[policy]` on SIGHUP and when `file` (the `--config` argument) changes.
    /// `running` is the configuration the application was built from.
    pub fn with_reload(
        mut self,
        file: Option<std::path::PathBuf>,
        running: RawSettings,
    ) -> anyhow::Result<Application> {
        self.reloader = Some(Reloader::new(
            file,
            running,
            self.worker.policy.clone(),
            self.worker.metrics.clone(),
        )?);
        Ok(self)
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
        let worker = tokio::spawn(self.worker.clone().run(self.shutdown.clone(), self.grace));
        let checkpoints = tokio::spawn(state::checkpoint_periodically(
            self.worker.store.clone(),
            self.shutdown.clone(),
        ));
        let maintenance = tokio::spawn(state::prune_periodically(
            self.worker.store.clone(),
            self.retention,
            self.shutdown.clone(),
        ));
        if let Some(reloader) = self.reloader {
            tokio::spawn(reloader.run(self.shutdown.clone()));
        }
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
        let _ = checkpoints.await;
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
