//! Validation: one function per section, every problem collected and named by its key.

mod backfill;
mod helpdesk;
mod offline;
mod policy;
pub(crate) mod preset;
mod state_url;

pub use offline::load_policy;

use std::time::Duration;

use super::raw::{OrdersSettings, RawSettings, ServerSettings, StateSettings, WorkerSettings};
use super::secrets::resolve_url_files;
use super::{orders_options, Settings};
use backfill::backfill;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(String),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl RawSettings {
    /// Checks every key and resolves `*_file` secrets. Reports all problems at once.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let mut errs = Vec::new();
        // `*.url_file` replaces `*.url`: resolve them first, then check the result.
        let mut this = resolve_url_files(self, &mut errs);
        preset::apply_preset(&mut this.orders, &mut errs);
        let this = &this;
        server(&this.server, &mut errs);
        state(&this.state, &mut errs);
        worker(&this.worker, &mut errs);
        orders(&this.orders, &mut errs);
        backfill(&this.backfill, &mut errs);
        let policy = match this.policy.validate() {
            Ok(p) => Some(p),
            Err(mut e) => {
                errs.append(&mut e);
                None
            }
        };
        let zendesk = this.zendesk.validate(&mut errs);
        let gorgias = this.gorgias.validate(&mut errs);
        if zendesk.is_none() && gorgias.is_none() && errs.is_empty() {
            errs.push(
                "zendesk.subdomain / gorgias.domain: no helpdesk is configured; set at least one"
                    .into(),
            );
        }

        match policy {
            Some(policy) if errs.is_empty() => Ok(Settings {
                server: this.server.clone(),
                state: this.state.clone(),
                worker: this.worker.clone(),
                orders: this.orders.clone(),
                policy,
                backfill: this.backfill.clone(),
                zendesk,
                gorgias,
            }),
            _ => Err(ConfigError::Invalid(errs)),
        }
    }
}

fn server(s: &ServerSettings, errs: &mut Vec<String>) {
    // The same resolution `serve` does when it binds, so `check-config` refuses what `serve` would.
    let resolves = std::net::ToSocketAddrs::to_socket_addrs(s.bind.as_str())
        .is_ok_and(|mut addrs| addrs.next().is_some());
    if !resolves {
        errs.push(format!(
            "server.bind: {:?} is not HOST:PORT with a port from 0 to 65535 and a host that resolves (for example \"0.0.0.0:8080\")",
            s.bind
        ));
    }
    if !(1024..=16 * 1024 * 1024).contains(&s.max_body_bytes) {
        errs.push("server.max_body_bytes: must be between 1024 and 16777216".into());
    }
    if s.unverified_body_budget_bytes < s.max_body_bytes {
        errs.push(
            "server.unverified_body_budget_bytes: must be at least server.max_body_bytes".into(),
        );
    }
    if s.max_connections == 0 {
        errs.push("server.max_connections: must be at least 1".into());
    }
    if s.head_timeout < Duration::from_millis(100) {
        errs.push("server.head_timeout: must be at least 100ms".into());
    }
    if s.request_timeout < Duration::from_millis(100) {
        errs.push("server.request_timeout: must be at least 100ms".into());
    }
    if !["auto", "json", "pretty"].contains(&s.log_format.as_str()) {
        errs.push(format!(
            "server.log_format: {:?} is not one of \"auto\", \"json\", \"pretty\"",
            s.log_format
        ));
    }
    if tracing_subscriber::EnvFilter::try_new(&s.log_level).is_err() {
        errs.push(format!(
            "server.log_level: {:?} is not a tracing filter",
            s.log_level
        ));
    }
}

fn state(st: &StateSettings, errs: &mut Vec<String>) {
    state_url::state_url(&st.url, errs);
    if st.max_connections == 0 {
        errs.push("state.max_connections: must be at least 1".into());
    }
    if st.dedupe_window.is_zero() {
        errs.push("state.dedupe_window: must be more than 0s".into());
    }
    if st.retention < st.dedupe_window {
        errs.push("state.retention: must be at least state.dedupe_window".into());
    }
    if st.connect_timeout.is_zero() {
        errs.push("state.connect_timeout: must be more than 0s".into());
    }
    if st.group_commit_window > Duration::from_secs(1) {
        errs.push(
            "state.group_commit_window: must be at most 1s (a webhook may wait this long)".into(),
        );
    }
    if !(1..=1000).contains(&st.group_commit_max_batch) {
        errs.push("state.group_commit_max_batch: must be between 1 and 1000".into());
    }
}

fn worker(w: &WorkerSettings, errs: &mut Vec<String>) {
    if !(1..=256).contains(&w.concurrency) {
        errs.push("worker.concurrency: must be between 1 and 256".into());
    }
    if w.lease < Duration::from_secs(2) {
        errs.push("worker.lease: must be at least 2s".into());
    }
    if w.poll_interval.is_zero() {
        errs.push("worker.poll_interval: must be more than 0s".into());
    }
    if w.retry_base.is_zero() || w.retry_base > w.retry_max {
        errs.push("worker.retry_base: must be more than 0s and at most worker.retry_max".into());
    }
    if w.retry_horizon < w.retry_base {
        errs.push("worker.retry_horizon: must be at least worker.retry_base".into());
    }
    if w.max_retry_after.is_zero() || w.max_retry_after > Duration::from_secs(3600) {
        errs.push("worker.max_retry_after: must be more than 0s and at most 1h".into());
    }
}

fn orders(o: &OrdersSettings, errs: &mut Vec<String>) {
    if o.url.trim().is_empty() {
        errs.push(
            "orders.url: required: the shop's order database (postgres://, mysql:// or sqlite://)"
                .into(),
        );
    } else if let Err(e) = crate::orders::OrderDb::check_options(&orders_options(o)) {
        errs.push(e.to_string());
    } else if !o.customers_query.trim().is_empty() {
        let checked = crate::orders::CustomerScan::check(&orders_options(o), &o.customers_query);
        errs.extend(checked.err().map(|e| e.to_string()));
    }
    if o.max_connections == 0 {
        errs.push("orders.max_connections: must be at least 1".into());
    }
    if o.query_timeout.is_zero() {
        errs.push("orders.query_timeout: must be more than 0s".into());
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::errors_of;

    #[test]
    fn missing_order_url_and_helpdesk_are_named() {
        let errs = errors_of("");
        assert!(
            errs.iter().any(|e| e.starts_with("orders.url:")),
            "{errs:?}"
        );
    }

    #[test]
    fn group_commit_limits_are_named() {
        let errs = errors_of("[state]\ngroup_commit_window = \"2s\"\ngroup_commit_max_batch = 0\n");
        for key in [
            "state.group_commit_window:",
            "state.group_commit_max_batch:",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(key)), "{key} in {errs:?}");
        }
        let errs = errors_of("[state]\ngroup_commit_max_batch = 1001\n");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("state.group_commit_max_batch:")),
            "{errs:?}"
        );
    }
}
