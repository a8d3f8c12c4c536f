//! The raw serde schema: what the files and the environment say, before any check.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::redact::{redact, redact_url};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub server: ServerSettings,
    pub state: StateSettings,
    pub worker: WorkerSettings,
    pub orders: OrdersSettings,
    pub policy: RawPolicy,
    pub zendesk: RawZendesk,
    pub gorgias: RawGorgias,
    #[serde(default)]
    pub backfill: BackfillSettings,
}

/// `ltv-tagger backfill`: tickets that were open before the service was installed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSettings {
    /// The part of the account's rate budget the backfill may use (0 < x ≤ 1).
    pub budget_share: f64,
}

impl Default for BackfillSettings {
    fn default() -> Self {
        BackfillSettings { budget_share: 0.5 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time from a new connection (or the previous answer) to a request's complete head.
    #[serde(with = "humantime_serde")]
    pub head_timeout: Duration,
    pub unverified_body_budget_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    pub log_format: String,
    pub log_level: String,
}

/// Its `Debug` (in `redact.rs`) shows the URL's password redacted.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// Read `url` from this file instead (it may hold a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    pub migrate_on_start: bool,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Group commit: how long a batch of webhook events waits for more after its first.
    #[serde(with = "humantime_serde")]
    pub group_commit_window: Duration,
    /// Group commit: webhook events per transaction at most.
    pub group_commit_max_batch: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub concurrency: usize,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_horizon: Duration,
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

/// Its `Debug` (in `redact.rs`) shows the URL's password redacted.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersSettings {
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// Read `url` from this file instead (it may hold a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    pub query: String,
    /// Every customer at once (`thresholds`): columns `email`, `ltv`, optional `orders`,
    /// `disputes`; empty = not set.
    #[serde(default)]
    pub customers_query: String,
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// A ready-made query for a shop platform (`orders::presets`); empty = none.
    #[serde(default)]
    pub preset: String,
    /// The preset's table prefix (`wp_`, `ps_`, a `schema.`); absent = the platform's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// `live` (default) or `shadow`: decide and record, write no tag.
    #[serde(default)]
    pub mode: crate::policy::Mode,
    pub dispute_tag: String,
    pub dispute_overrides_vip: bool,
    pub vip_tiers: Vec<RawTier>,
    /// Remove the policy's own tags that the decision no longer gives (default true).
    #[serde(default = "yes")]
    pub remove_stale_tags: bool,
    /// The condition that makes a disputer (default `disputes > 0`).
    #[serde(default = "disputes_above_zero")]
    pub dispute_when: String,
    /// `[{ tag, when }]`: tags from CEL conditions over the order query's columns.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

fn yes() -> bool {
    true
}

fn disputes_above_zero() -> String {
    "disputes > 0".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub tag: String,
    pub when: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub tag: String,
    pub min_ltv: Amount,
}

/// A money amount as written in config: a decimal string ("499.99") or an integer (500).
/// Floats are refused: 0.1 + 0.2 is not money.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Amount {
    Text(String),
    Integer(i64),
    Float(f64),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawZendesk {
    pub subdomain: String,
    pub api_base_url: String,
    pub email: String,
    #[serde(serialize_with = "redact")]
    pub api_token: SecretString,
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    #[serde(serialize_with = "redact")]
    pub webhook_secret: SecretString,
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timestamp_tolerance: Duration,
    pub requests_per_minute: u32,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A ready backlog the budget cannot clear with single writes within this time is written
    /// in bulk (`update_many`), up to 100 tickets per call.
    #[serde(with = "humantime_serde")]
    pub bulk_after: Duration,
    pub dangerous_accept_test_secret: bool,
    /// Event-subscription types queued (`ticket.created`, …); others are answered `ignored`.
    pub event_types: Vec<String>,
    /// Custom field ids to set with the tags (`{ ltv, tier, orders, disputes }`).
    #[serde(default)]
    pub fields: crate::helpdesk::FieldIds,
    /// A private comment written with the service's first tag write on a ticket ("": none).
    #[serde(default)]
    pub note_template: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGorgias {
    pub domain: String,
    pub api_base_url: String,
    pub email: String,
    #[serde(serialize_with = "redact")]
    pub api_key: SecretString,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    #[serde(serialize_with = "redact")]
    pub webhook_token: SecretString,
    #[serde(default)]
    pub webhook_token_file: Option<PathBuf>,
    pub requests_per_window: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// An internal note written with the service's first tag write on a ticket ("": none).
    #[serde(default)]
    pub note_template: String,
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{errors_of, MINIMAL};

    #[test]
    fn unknown_keys_are_refused() {
        let errs = errors_of(&format!("{MINIMAL}\n[server]\nbnid = \"0.0.0.0:1\"\n"));
        assert!(errs.iter().any(|e| e.contains("bnid")), "{errs:?}");
    }
}
