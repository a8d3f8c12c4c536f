//! Hot reload: on `SIGHUP` or when the `--config` file changes (debounced), the `[policy]` section is re-read and swapped in atomically; keys that need a restart are logged and ignored; an invalid file changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::RawSettings;
use crate::metrics::Metrics;
use crate::policy::Policy;

/// Changes within this window are one reload (an editor writes, renames, touches).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The running policy, shared by every job; a reload replaces it for every decision after.
#[derive(Clone)]
pub struct SharedPolicy(Arc<ArcSwap<Policy>>);

impl SharedPolicy {
    /// The policy in force now (cheap; hold it for one decision only).
    pub fn load(&self) -> Arc<Policy> {
        self.0.load_full()
    }

    pub fn store(&self, policy: Policy) {
        self.0.store(Arc::new(policy));
    }
}

impl From<Policy> for SharedPolicy {
    fn from(p: Policy) -> SharedPolicy {
        SharedPolicy(Arc::new(ArcSwap::from_pointee(p)))
    }
}

/// Why a reload ran (for the log).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Sighup,
    FileChanged,
}

/// Listens for `SIGHUP` and watches the config file. Built before the server answers, so a
/// `SIGHUP` sent once the service is up never falls on the default action (terminate).
pub struct Reloader {
    file: Option<PathBuf>,
    running: RawSettings,
    policy: SharedPolicy,
    metrics: Metrics,
    events: mpsc::UnboundedReceiver<Trigger>,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
    _watcher: Option<Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>>,
}

impl Reloader {
    /// Must be called inside a Tokio runtime. `running` is the configuration the service started
    /// with; `file` the `--config` argument.
    pub fn new(
        file: Option<PathBuf>,
        running: RawSettings,
        policy: SharedPolicy,
        metrics: Metrics,
    ) -> anyhow::Result<Reloader> {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = match &file {
            Some(path) => Some(watch(path, tx)?),
            None => None,
        };
        Ok(Reloader {
            file,
            running,
            policy,
            metrics,
            events,
            #[cfg(unix)]
            hangup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
            _watcher: watcher,
        })
    }

    /// Reloads on every trigger until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            #[cfg(unix)]
            let hangup = self.hangup.recv();
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let trigger = tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(()) = hangup => Trigger::Sighup,
                Some(t) = self.events.recv() => t,
            };
            self.reload(trigger);
        }
    }

    fn reload(&mut self, trigger: Trigger) {
        let loaded = RawSettings::load(self.file.as_deref(), "LTV_TAGGER").and_then(|raw| {
            let settings = raw.validate()?;
            Ok((raw, settings))
        });
        let (raw, settings) = match loaded {
            Ok(x) => x,
            Err(e) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(?trigger, error = %e, "configuration reload failed: the running configuration stays in force");
                return;
            }
        };
        for key in needs_restart(&self.running, &raw) {
            tracing::warn!(
                ?trigger,
                key,
                "configuration reload: {key} changed, which needs a restart; ignored until then"
            );
        }
        let policy = settings.policy;
        tracing::info!(
            ?trigger,
            mode = ?policy.mode(),
            tiers = ?policy.tiers().iter().map(|t| format!("{} ≥ {}", t.tag, t.min_ltv)).collect::<Vec<_>>(),
            "configuration reloaded: the new [policy] applies to every decision from now on"
        );
        self.policy.store(policy);
        self.running.policy = raw.policy;
        self.metrics.config_reloads.with_label_values(&["ok"]).inc();
    }
}

/// Watches the file's directory (editors replace a file by renaming a new one over it) and
/// forwards changes to that file.
fn watch(
    path: &Path,
    tx: mpsc::UnboundedSender<Trigger>,
) -> anyhow::Result<Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>> {
    let file = std::path::absolute(path)?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = file.file_name().map(|n| n.to_os_string());
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        if let Ok(events) = result {
            if events.iter().any(|e| e.path.file_name() == name.as_deref()) {
                let _ = tx.send(Trigger::FileChanged);
            }
        }
    })?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(debouncer)
}

/// The keys outside `[policy]` whose value differs (secrets compare redacted, so a changed secret
/// is not seen here).
fn needs_restart(running: &RawSettings, new: &RawSettings) -> Vec<String> {
    let flat = |raw: &RawSettings| {
        let mut keys = std::collections::BTreeMap::new();
        if let Ok(toml::Value::Table(sections)) = toml::Value::try_from(raw) {
            for (section, value) in sections {
                if section == "policy" {
                    continue;
                }
                match value {
                    toml::Value::Table(t) => {
                        for (k, v) in t {
                            keys.insert(format!("{section}.{k}"), v);
                        }
                    }
                    other => {
                        keys.insert(section, other);
                    }
                }
            }
        }
        keys
    };
    let (old, new) = (flat(running), flat(new));
    let mut changed: Vec<String> = old
        .iter()
        .filter(|(k, v)| new.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    changed.extend(new.keys().filter(|k| !old.contains_key(*k)).cloned());
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_outside_the_policy_need_a_restart() {
        let load = |extra: &str| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("c.toml");
            std::fs::write(&path, extra).expect("write");
            RawSettings::load(Some(&path), "LTV_TAGGER_UNIT_TEST_UNUSED").expect("loads")
        };
        let a = load("[orders]\nurl = \"sqlite://a.db\"\n");
        let b = load("[orders]\nurl = \"sqlite://a.db\"\n[policy]\nmode = \"shadow\"\n[worker]\nconcurrency = 3\n");
        assert_eq!(needs_restart(&a, &b), ["worker.concurrency"]);
        assert!(needs_restart(&a, &a).is_empty());
    }
}
