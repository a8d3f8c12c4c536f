//! Settings: built-in defaults (`config/default.toml`) → `--config FILE` → `LTV_TAGGER__SECTION__KEY`.
//!
//! Loading happens in two steps: the `config` crate merges the layers into [`RawSettings`] (plain
//! data, secrets already wrapped in `SecretString`), then [`RawSettings::validate`] checks every key
//! and reports every problem at once, each message naming its key.
//!
//! - `mod.rs` (here): the layering ([`Settings::load`], [`RawSettings::load`]) and the validated
//!   [`Settings`] the program runs on.
//! - `raw`: the serde schema, [`RawSettings`] and its sections.
//! - `validate`: one check per section, errors collected by key ([`ConfigError`]).
//! - `secrets`: `key` / `key_file` and `url` / `url_file` resolution.
//! - `redact`: what `check-config` prints and what `Debug` shows, secrets and passwords redacted.

mod raw;
mod redact;
mod secrets;
#[cfg(test)]
mod test_support;
mod validate;

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use crate::policy::Policy;

pub use raw::RawRule;
pub use raw::{
    Amount, BackfillSettings, OrdersSettings, RawGorgias, RawPolicy, RawSettings, RawTier,
    RawZendesk, ServerSettings, StateSettings, WorkerSettings,
};
pub use redact::redact_url_password;
pub use validate::{load_policy, ConfigError};

/// The documented defaults, compiled in so the binary runs without any file.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Zendesk's documented secret for test deliveries sent before a webhook is saved.
pub const ZENDESK_TEST_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";

impl RawSettings {
    /// Merges the layers. `file` is the `--config` argument; `env_prefix` is normally `LTV_TAGGER`.
    pub fn load(file: Option<&Path>, env_prefix: &str) -> Result<RawSettings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "--config {}: no such file",
                    path.display()
                )));
            }
            check_toml_syntax(path)?;
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix(env_prefix)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(false),
        );
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        merged
            .try_deserialize()
            .map_err(|e| ConfigError::Load(e.to_string()))
    }

    pub fn orders_options(&self) -> crate::orders::OrderDbOptions {
        orders_options(&self.orders)
    }
}

/// A syntax error names the file, line and column, never the line's text: the line may hold a
/// secret (the `config` crate's own message quotes it).
fn check_toml_syntax(path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Load(format!("--config {}: {e}", path.display())))?;
    let Err(e) = toml::from_str::<toml::Table>(&text) else {
        return Ok(());
    };
    let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(ConfigError::Load(format!(
        "--config {}: TOML syntax error at line {line}, column {column}: {} (the line is not shown: it may hold a secret)",
        path.display(),
        e.message().trim()
    )))
}

fn orders_options(o: &OrdersSettings) -> crate::orders::OrderDbOptions {
    crate::orders::OrderDbOptions {
        url: o.url.clone(),
        query: o.query.clone(),
        cache_ttl: o.cache_ttl,
        cache_capacity: o.cache_capacity,
        max_connections: o.max_connections,
        query_timeout: o.query_timeout,
    }
}

// The validated layer: what the program runs on.

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub state: StateSettings,
    pub worker: WorkerSettings,
    pub orders: OrdersSettings,
    pub policy: Policy,
    pub zendesk: Option<ZendeskSettings>,
    pub gorgias: Option<GorgiasSettings>,
    pub backfill: BackfillSettings,
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        RawSettings::load(file, "LTV_TAGGER")?.validate()
    }

    pub fn orders_options(&self) -> crate::orders::OrderDbOptions {
        orders_options(&self.orders)
    }
}

/// Secrets are `SecretString`, whose `Debug` prints `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct ZendeskSettings {
    pub base_url: String,
    pub email: String,
    pub api_token: SecretString,
    pub webhook_secret: SecretString,
    pub timestamp_tolerance: Duration,
    pub requests_per_minute: u32,
    pub request_timeout: Duration,
    /// `zendesk.bulk_after`: the backlog the budget clears within it is left to single writes.
    pub bulk_after: Duration,
    pub dangerous_accept_test_secret: bool,
    /// Event-subscription types queued, without the `zen:event-type:` prefix.
    pub event_types: Vec<String>,
    /// `zendesk.fields` and `zendesk.note_template`.
    pub view: crate::helpdesk::TicketView,
}

#[derive(Debug, Clone)]
pub struct GorgiasSettings {
    pub base_url: String,
    pub email: String,
    pub api_key: SecretString,
    pub webhook_token: SecretString,
    pub requests_per_window: u32,
    pub window: Duration,
    pub request_timeout: Duration,
    /// `gorgias.note_template`.
    pub view: crate::helpdesk::TicketView,
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::test_support::{raw, MINIMAL};
    use super::*;

    #[test]
    fn defaults_plus_minimal_file_is_valid() {
        let s = raw(MINIMAL).and_then(|r| r.validate());
        let s = match s {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let z = s.zendesk.as_ref().map(|z| z.base_url.as_str());
        assert_eq!(z, Some("https://acme.zendesk.com"));
        assert!(s.gorgias.is_none());
        assert_eq!(s.policy.tiers().len(), 2);
    }

    #[test]
    fn a_toml_syntax_error_on_a_secret_line_names_the_line_but_not_the_secret() {
        for bad in [
            "api_token = \"hunter2-secret",
            "api_token = hunter2-secret",
            "api_token = \"hunter2-secret\" x",
        ] {
            let toml = MINIMAL.replace("api_token = \"tok-123\"", bad);
            let e = raw(&toml).map(drop).expect_err(bad).to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("TOML syntax error at line 7"), "{e}");
        }
    }

    #[test]
    fn environment_overrides_keep_secrets_verbatim_and_parse_numbers() {
        // A prefix of its own, so no other test sees these variables.
        let vars = [
            ("LTV_TAGGER_UT_ENV__ORDERS__URL", "sqlite://shop.db"),
            ("LTV_TAGGER_UT_ENV__ZENDESK__SUBDOMAIN", "acme"),
            ("LTV_TAGGER_UT_ENV__ZENDESK__EMAIL", "agent@acme.com"),
            ("LTV_TAGGER_UT_ENV__ZENDESK__API_TOKEN", "0123"),
            ("LTV_TAGGER_UT_ENV__ZENDESK__WEBHOOK_SECRET", "1e5"),
            ("LTV_TAGGER_UT_ENV__ZENDESK__REQUESTS_PER_MINUTE", "700"),
            ("LTV_TAGGER_UT_ENV__SERVER__DRAIN_DELAY", "5s"),
        ];
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let s = RawSettings::load(None, "LTV_TAGGER_UT_ENV").and_then(|r| r.validate());
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        let z = s.zendesk.expect("zendesk");
        assert_eq!(z.api_token.expose_secret(), "0123");
        assert_eq!(z.webhook_secret.expose_secret(), "1e5");
        assert_eq!(z.requests_per_minute, 700);
        assert_eq!(s.server.drain_delay, Duration::from_secs(5));
    }
}
