//! Settings: built-in defaults (`config/default.toml`) → `--config FILE` → `LTV_TAGGER__SECTION__KEY`.
//!
//! Loading happens in two steps: the `config` crate merges the layers into [`RawSettings`] (plain
//! data, secrets already wrapped in `SecretString`), then [`RawSettings::validate`] checks every key
//! and reports every problem at once, each message naming its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::Tag;
use crate::policy::{Policy, VipTier};

/// The documented defaults, compiled in so the binary runs without any file.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Zendesk's documented secret for test deliveries sent before a webhook is saved.
pub const ZENDESK_TEST_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(String),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

// ---------------------------------------------------------------------------------------------
// Raw layer: what the files and the environment say.

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
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    pub log_format: String,
    pub log_level: String,
}

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
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersSettings {
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// Read `url` from this file instead (it may hold a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    pub query: String,
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub dispute_tag: String,
    pub dispute_overrides_vip: bool,
    pub vip_tiers: Vec<RawTier>,
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
    pub dangerous_accept_test_secret: bool,
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
}

fn redact<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("[REDACTED]")
    }
}

fn redact_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url_password(url))
}

/// `postgres://user:pw@host/db` → `postgres://user:[REDACTED]@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    // The last `@` ends the user info, even when an unencoded password holds a `/`.
    let main = match main.rsplit_once('@') {
        Some((userinfo, hostpath)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:[REDACTED]@{hostpath}"),
            None => main.to_string(),
        },
        None => main.to_string(),
    };
    match query {
        None => format!("{scheme}://{main}"),
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("password")
                            || k.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{k}=[REDACTED]")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{scheme}://{main}?{}", q.join("&"))
        }
    }
}

// Database URLs may hold passwords: their `Debug` shows them redacted.
impl std::fmt::Debug for StateSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSettings")
            .field("url", &redact_url_password(&self.url))
            .field("url_file", &self.url_file)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("dedupe_window", &self.dedupe_window)
            .field("retention", &self.retention)
            .finish()
    }
}

impl std::fmt::Debug for OrdersSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdersSettings")
            .field("url", &redact_url_password(&self.url))
            .field("url_file", &self.url_file)
            .field("query", &self.query)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .field("max_connections", &self.max_connections)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

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

    /// Checks every key and resolves `*_file` secrets. Reports all problems at once.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let mut errs = Vec::new();
        // `*.url_file` replaces `*.url`: resolve them first, then check the result.
        let mut resolved = self.clone();
        for (section, url, file) in [
            ("state", &mut resolved.state.url, &self.state.url_file),
            ("orders", &mut resolved.orders.url, &self.orders.url_file),
        ] {
            if let Some(path) = file {
                match std::fs::read_to_string(path) {
                    Ok(u) if !u.trim().is_empty() => *url = u.trim().to_string(),
                    Ok(_) => errs.push(format!("{section}.url_file: {} is empty", path.display())),
                    Err(e) => errs.push(format!(
                        "{section}.url_file: cannot read {}: {e}",
                        path.display()
                    )),
                }
            }
        }
        let this = &resolved;
        let s = &this.server;
        if s.bind.parse::<std::net::SocketAddr>().is_err()
            && !s
                .bind
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            errs.push(format!(
                "server.bind: {:?} is not HOST:PORT (for example \"0.0.0.0:8080\")",
                s.bind
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&s.max_body_bytes) {
            errs.push("server.max_body_bytes: must be between 1024 and 16777216".into());
        }
        if s.max_connections == 0 {
            errs.push("server.max_connections: must be at least 1".into());
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

        let st = &this.state;
        if !(st.url.starts_with("sqlite://")
            || st.url.starts_with("postgres://")
            || st.url.starts_with("postgresql://"))
        {
            errs.push(format!(
                "state.url: {:?} must start with sqlite:// or postgres://",
                redact_url_password(&st.url)
            ));
        }
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

        let w = &this.worker;
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
            errs.push(
                "worker.retry_base: must be more than 0s and at most worker.retry_max".into(),
            );
        }
        if w.retry_horizon < w.retry_base {
            errs.push("worker.retry_horizon: must be at least worker.retry_base".into());
        }

        let o = &this.orders;
        if o.url.trim().is_empty() {
            errs.push(
                "orders.url: required: the shop's order database (postgres://, mysql:// or sqlite://)"
                    .into(),
            );
        } else if let Err(e) = crate::orders::OrderDb::check_options(&this.orders_options()) {
            errs.push(e.to_string());
        }
        if o.max_connections == 0 {
            errs.push("orders.max_connections: must be at least 1".into());
        }
        if o.query_timeout.is_zero() {
            errs.push("orders.query_timeout: must be more than 0s".into());
        }

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
                zendesk,
                gorgias,
            }),
            _ => Err(ConfigError::Invalid(errs)),
        }
    }

    pub fn orders_options(&self) -> crate::orders::OrderDbOptions {
        orders_options(&self.orders)
    }

    /// The effective configuration as TOML, with every secret and URL password redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
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

impl RawPolicy {
    fn validate(&self) -> Result<Policy, Vec<String>> {
        let mut errs = Vec::new();
        let dispute_tag = if self.dispute_tag.trim().is_empty() {
            None
        } else {
            match Tag::parse(&self.dispute_tag) {
                Ok(t) => Some(t),
                Err(e) => {
                    errs.push(format!("policy.dispute_tag: {e}"));
                    None
                }
            }
        };
        let mut tiers = Vec::new();
        for (i, t) in self.vip_tiers.iter().enumerate() {
            let key = format!("policy.vip_tiers[{i}]");
            let tag = Tag::parse(&t.tag).map_err(|e| format!("{key}.tag: {e}"));
            let min = match &t.min_ltv {
                Amount::Text(s) => s.trim().parse::<Decimal>().map_err(|_| {
                    format!("{key}.min_ltv: {s:?} is not a decimal amount (write it like \"499.99\")")
                }),
                Amount::Integer(n) => Ok(Decimal::from(*n)),
                Amount::Float(f) => Err(format!(
                    "{key}.min_ltv: write amounts as strings to keep them exact, e.g. min_ltv = \"{f}\""
                )),
            }
            .and_then(|d| {
                if d.is_sign_negative() {
                    Err(format!("{key}.min_ltv: must not be negative"))
                } else {
                    Ok(d)
                }
            });
            match (tag, min) {
                (Ok(tag), Ok(min_ltv)) => tiers.push(VipTier { tag, min_ltv }),
                (tag, min) => {
                    errs.extend(tag.err());
                    errs.extend(min.err());
                }
            }
        }
        for (i, t) in tiers.iter().enumerate() {
            if tiers[..i].iter().any(|o| o.tag == t.tag) {
                errs.push(format!(
                    "policy.vip_tiers: tag {:?} is used by two tiers",
                    t.tag.as_str()
                ));
            }
            if tiers[..i].iter().any(|o| o.min_ltv == t.min_ltv) {
                errs.push(format!(
                    "policy.vip_tiers: two tiers start at min_ltv {}",
                    t.min_ltv
                ));
            }
            if dispute_tag.as_ref() == Some(&t.tag) {
                errs.push(format!(
                    "policy.dispute_tag: {:?} is also a VIP tier tag",
                    t.tag.as_str()
                ));
            }
        }
        if errs.is_empty() {
            Ok(Policy::new(tiers, dispute_tag, self.dispute_overrides_vip))
        } else {
            Err(errs)
        }
    }
}

/// Resolves `key` / `key_file`: exactly one of them may be set.
fn secret(
    section: &str,
    key: &str,
    inline: &SecretString,
    file: &Option<PathBuf>,
    errs: &mut Vec<String>,
) -> Option<SecretString> {
    let inline_set = !inline.expose_secret().is_empty();
    match file {
        Some(path) if inline_set => {
            errs.push(format!(
                "{section}.{key} / {section}.{key}_file: set one of them, not both ({})",
                path.display()
            ));
            None
        }
        Some(path) => match std::fs::read_to_string(path) {
            Ok(s) if !s.trim().is_empty() => Some(SecretString::from(s.trim().to_string())),
            Ok(_) => {
                errs.push(format!("{section}.{key}_file: {} is empty", path.display()));
                None
            }
            Err(e) => {
                errs.push(format!(
                    "{section}.{key}_file: cannot read {}: {e}",
                    path.display()
                ));
                None
            }
        },
        None if inline_set => Some(inline.clone()),
        None => {
            errs.push(format!(
                "{section}.{key}: required (or {section}.{key}_file) when {section} is configured"
            ));
            None
        }
    }
}

/// `https://{name}.{domain}` unless `api_base_url` overrides it.
fn base_url(
    section: &str,
    name_key: &str,
    name: &str,
    override_url: &str,
    domain: &str,
    errs: &mut Vec<String>,
) -> Option<String> {
    let url = override_url.trim().trim_end_matches('/');
    if !url.is_empty() {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Some(url.to_ascii_lowercase());
        }
        errs.push(format!(
            "{section}.api_base_url: {url:?} must start with http:// or https://"
        ));
        return None;
    }
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some(format!("https://{}.{domain}", name.to_ascii_lowercase()))
    } else {
        errs.push(format!(
            "{section}.{name_key}: {name:?} must be the bare account name (e.g. \"acme\" for acme.{domain})"
        ));
        None
    }
}

fn require_email(section: &str, email: &str, errs: &mut Vec<String>) {
    if !email.contains('@') {
        errs.push(format!(
            "{section}.email: required: the agent email the API token belongs to"
        ));
    }
}

impl RawZendesk {
    fn enabled(&self) -> bool {
        !self.subdomain.trim().is_empty() || !self.api_base_url.trim().is_empty()
    }

    fn validate(&self, errs: &mut Vec<String>) -> Option<ZendeskSettings> {
        if !self.enabled() {
            return None;
        }
        let n = errs.len();
        let base = base_url(
            "zendesk",
            "subdomain",
            &self.subdomain,
            &self.api_base_url,
            "zendesk.com",
            errs,
        );
        require_email("zendesk", &self.email, errs);
        let api_token = secret(
            "zendesk",
            "api_token",
            &self.api_token,
            &self.api_token_file,
            errs,
        );
        let webhook_secret = secret(
            "zendesk",
            "webhook_secret",
            &self.webhook_secret,
            &self.webhook_secret_file,
            errs,
        );
        if self.requests_per_minute == 0 {
            errs.push("zendesk.requests_per_minute: must be at least 1".into());
        }
        if self.timestamp_tolerance < Duration::from_secs(1) {
            errs.push("zendesk.timestamp_tolerance: must be at least 1s".into());
        }
        if self.request_timeout.is_zero() {
            errs.push("zendesk.request_timeout: must be more than 0s".into());
        }
        if errs.len() > n {
            return None;
        }
        Some(ZendeskSettings {
            base_url: base?,
            email: self.email.trim().to_string(),
            api_token: api_token?,
            webhook_secret: webhook_secret?,
            timestamp_tolerance: self.timestamp_tolerance,
            requests_per_minute: self.requests_per_minute,
            request_timeout: self.request_timeout,
            dangerous_accept_test_secret: self.dangerous_accept_test_secret,
        })
    }
}

impl RawGorgias {
    fn enabled(&self) -> bool {
        !self.domain.trim().is_empty() || !self.api_base_url.trim().is_empty()
    }

    fn validate(&self, errs: &mut Vec<String>) -> Option<GorgiasSettings> {
        if !self.enabled() {
            return None;
        }
        let n = errs.len();
        let base = base_url(
            "gorgias",
            "domain",
            &self.domain,
            &self.api_base_url,
            "gorgias.com",
            errs,
        );
        require_email("gorgias", &self.email, errs);
        let api_key = secret(
            "gorgias",
            "api_key",
            &self.api_key,
            &self.api_key_file,
            errs,
        );
        let webhook_token = secret(
            "gorgias",
            "webhook_token",
            &self.webhook_token,
            &self.webhook_token_file,
            errs,
        );
        if self.requests_per_window == 0 {
            errs.push("gorgias.requests_per_window: must be at least 1".into());
        }
        if self.window < Duration::from_secs(1) {
            errs.push("gorgias.window: must be at least 1s".into());
        }
        if self.request_timeout.is_zero() {
            errs.push("gorgias.request_timeout: must be more than 0s".into());
        }
        if errs.len() > n {
            return None;
        }
        Some(GorgiasSettings {
            base_url: base?,
            email: self.email.trim().to_string(),
            api_key: api_key?,
            webhook_token: webhook_token?,
            requests_per_window: self.requests_per_window,
            window: self.window,
            request_timeout: self.request_timeout,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Validated layer: what the program runs on.

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub state: StateSettings,
    pub worker: WorkerSettings,
    pub orders: OrdersSettings,
    pub policy: Policy,
    pub zendesk: Option<ZendeskSettings>,
    pub gorgias: Option<GorgiasSettings>,
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
    pub dangerous_accept_test_secret: bool,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(extra: &str) -> Result<RawSettings, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Load(e.to_string()))?;
        let path = dir.path().join("c.toml");
        std::fs::write(&path, extra).map_err(|e| ConfigError::Load(e.to_string()))?;
        RawSettings::load(Some(&path), "LTV_TAGGER_UNIT_TEST_UNUSED")
    }

    const MINIMAL: &str = r#"
[orders]
url = "sqlite://shop.db"
[zendesk]
subdomain = "acme"
email = "agent@acme.com"
api_token = "tok-123"
webhook_secret = "whsec-456"
"#;

    fn errors_of(toml: &str) -> Vec<String> {
        match raw(toml).and_then(|r| r.validate()) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(e)) => e,
            Err(e) => vec![e.to_string()],
        }
    }

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
    fn missing_order_url_and_helpdesk_are_named() {
        let errs = errors_of("");
        assert!(
            errs.iter().any(|e| e.starts_with("orders.url:")),
            "{errs:?}"
        );
    }

    #[test]
    fn zendesk_without_secrets_names_each_key() {
        let errs =
            errors_of("[orders]\nurl = \"sqlite://x.db\"\n[zendesk]\nsubdomain = \"acme\"\n");
        for key in [
            "zendesk.email:",
            "zendesk.api_token:",
            "zendesk.webhook_secret:",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(key)),
                "{key} missing in {errs:?}"
            );
        }
    }

    #[test]
    fn float_and_garbage_thresholds_are_refused_with_their_key() {
        let errs = errors_of(&format!(
            "{MINIMAL}\n[policy]\nvip_tiers = [{{ tag = \"vip\", min_ltv = 499.5 }}, {{ tag = \"gold\", min_ltv = \"lots\" }}]\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("policy.vip_tiers[0].min_ltv:")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("policy.vip_tiers[1].min_ltv:")),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let errs = errors_of(&format!("{MINIMAL}\n[server]\nbnid = \"0.0.0.0:1\"\n"));
        assert!(errs.iter().any(|e| e.contains("bnid")), "{errs:?}");
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tok = dir.path().join("tok");
        std::fs::write(&tok, "file-token-789\n").expect("write");
        let toml = MINIMAL.replace(
            "api_token = \"tok-123\"",
            &format!("api_token_file = {:?}", tok.display().to_string()),
        );
        let raw = raw(&toml).expect("load");
        let s = raw.validate().expect("valid");
        let z = s.zendesk.expect("zendesk");
        assert_eq!(z.api_token.expose_secret(), "file-token-789");
        let shown = format!("{z:?}{}", raw.to_redacted_toml());
        assert!(
            !shown.contains("file-token-789") && !shown.contains("whsec-456"),
            "{shown}"
        );
    }

    #[test]
    fn database_urls_can_come_from_files_and_are_redacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("orders_url");
        std::fs::write(&f, "postgres://reader:pw-from-file@db/shop\n").expect("write");
        let toml = MINIMAL.replace(
            "url = \"sqlite://shop.db\"",
            &format!("url_file = {:?}", f.display().to_string()),
        );
        let raw = raw(&toml).expect("load");
        let s = raw.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.orders.url, "postgres://reader:pw-from-file@db/shop");
        assert!(!raw.to_redacted_toml().contains("pw-from-file"));
        let missing = toml.replace(&f.display().to_string(), "/nonexistent/url");
        let errs = errors_of(&missing);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("orders.url_file: cannot read")),
            "{errs:?}"
        );
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

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://reader:hunter2@db:5432/shop"),
            "postgres://reader:[REDACTED]@db:5432/shop"
        );
        assert_eq!(
            redact_url_password("sqlite://data/x.db"),
            "sqlite://data/x.db"
        );
    }
}
