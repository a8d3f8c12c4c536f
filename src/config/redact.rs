//! Redaction for output and `Debug`: secrets and database URL passwords never print.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

use super::raw::{OrdersSettings, RawSettings, StateSettings};

/// Serializes a secret as `[REDACTED]` (or `""` when unset, so an empty key still shows as empty).
pub(super) fn redact<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("[REDACTED]")
    }
}

/// Serializes a database URL with its password redacted.
pub(super) fn redact_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
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

impl RawSettings {
    /// The effective configuration as TOML, with every secret and URL password redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
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
            .field("group_commit_window", &self.group_commit_window)
            .field("group_commit_max_batch", &self.group_commit_max_batch)
            .finish()
    }
}

impl std::fmt::Debug for OrdersSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdersSettings")
            .field("url", &redact_url_password(&self.url))
            .field("url_file", &self.url_file)
            .field("query", &self.query)
            .field("customers_query", &self.customers_query)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .field("max_connections", &self.max_connections)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
