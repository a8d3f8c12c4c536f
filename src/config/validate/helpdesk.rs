//! Validation of the `[zendesk]` and `[gorgias]` sections: account URL, agent email, credentials.

use std::time::Duration;

use crate::config::raw::{RawGorgias, RawZendesk};
use crate::config::secrets::secret;
use crate::config::{GorgiasSettings, ZendeskSettings};
use crate::helpdesk::{check_template, FieldIds, TicketView};

/// `{section}.note_template` checked; `None` when empty (no note).
fn note_template(section: &str, template: &str, errs: &mut Vec<String>) -> Option<String> {
    if template.trim().is_empty() {
        return None;
    }
    if let Err(e) = check_template(template) {
        errs.push(format!("{section}.note_template: {e}"));
    }
    Some(template.to_string())
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
        let Some((scheme, host)) = url
            .split_once("://")
            .filter(|(s, _)| ["http", "https"].contains(&s.to_ascii_lowercase().as_str()))
        else {
            errs.push(format!(
                "{section}.api_base_url: {url:?} must start with http:// or https://"
            ));
            return None;
        };
        // The service appends `/api/v2/…` (Zendesk) or `/api/…` (Gorgias) itself: a path here
        // would double it and every write would get a 404.
        if let Some(at) = host.find(['/', '?', '#']) {
            errs.push(format!(
                "{section}.api_base_url: {url:?} has a path ({:?}); give scheme and host only, e.g. \"https://{}\" (the service adds the API path itself)",
                &host[at..],
                &host[..at]
            ));
            return None;
        }
        if host.is_empty() {
            errs.push(format!("{section}.api_base_url: {url:?} has no host"));
            return None;
        }
        return Some(format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        ));
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

/// `zendesk.event_types`: ticket event names, with or without the `zen:event-type:` prefix.
fn event_types(raw: &[String], errs: &mut Vec<String>) -> Vec<String> {
    let mut types = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let t = t.trim();
        let name = t.strip_prefix("zen:event-type:").unwrap_or(t);
        let valid = name.strip_prefix("ticket.").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        if valid {
            types.push(name.to_string());
        } else {
            errs.push(format!(
                "zendesk.event_types[{i}]: {t:?} is not a ticket event type (for example \"ticket.created\"); only ticket events name a ticket to tag"
            ));
        }
    }
    types
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

    pub(super) fn validate(&self, errs: &mut Vec<String>) -> Option<ZendeskSettings> {
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
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.bulk_after) {
            errs.push(format!(
                "zendesk.bulk_after: must be between 1s and 1h (got {}): the backlog that single writes clear within it keeps the low-latency path",
                humantime::format_duration(self.bulk_after)
            ));
        }
        let event_types = event_types(&self.event_types, errs);
        let note = note_template("zendesk", &self.note_template, errs);
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
            bulk_after: self.bulk_after,
            dangerous_accept_test_secret: self.dangerous_accept_test_secret,
            event_types,
            view: TicketView {
                fields: self.fields.clone(),
                note_template: note,
            },
        })
    }
}

impl RawGorgias {
    fn enabled(&self) -> bool {
        !self.domain.trim().is_empty() || !self.api_base_url.trim().is_empty()
    }

    pub(super) fn validate(&self, errs: &mut Vec<String>) -> Option<GorgiasSettings> {
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
        let note = note_template("gorgias", &self.note_template, errs);
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
            view: TicketView {
                fields: FieldIds::default(),
                note_template: note,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::errors_of;

    #[test]
    fn an_api_base_url_with_a_path_is_refused_naming_the_key() {
        for (section, extra) in [
            (
                "zendesk",
                "subdomain = \"\"\nemail = \"a@b.c\"\napi_token = \"t\"\nwebhook_secret = \"s\"",
            ),
            (
                "gorgias",
                "email = \"a@b.c\"\napi_key = \"k\"\nwebhook_token = \"t\"",
            ),
        ] {
            for url in [
                "https://acme.example.com/api/v2",
                "http://127.0.0.1:9000/api/",
                "https://x.test?a=1",
            ] {
                let errs = errors_of(&format!(
                    "[orders]\nurl = \"sqlite://x.db\"\n[{section}]\napi_base_url = \"{url}\"\n{extra}\n"
                ));
                assert!(
                    errs.iter()
                        .any(|e| e.starts_with(&format!("{section}.api_base_url:"))
                            && e.contains("has a path")),
                    "{section} {url}: {errs:?}"
                );
            }
            let errs = errors_of(&format!(
                "[orders]\nurl = \"sqlite://x.db\"\n[{section}]\napi_base_url = \"http://127.0.0.1:9000/\"\n{extra}\n"
            ));
            assert!(errs.is_empty(), "a trailing slash is fine: {errs:?}");
        }
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
    fn a_bulk_after_outside_1s_to_1h_is_refused_naming_the_key() {
        let zendesk = "[orders]\nurl = \"sqlite://x.db\"\n[zendesk]\nsubdomain = \"acme\"\nemail = \"a@b.c\"\napi_token = \"t\"\nwebhook_secret = \"s\"\n";
        for bad in ["0s", "500ms", "2h"] {
            let errs = errors_of(&format!("{zendesk}bulk_after = \"{bad}\"\n"));
            assert!(
                errs.iter().any(|e| e.starts_with("zendesk.bulk_after:")),
                "{bad}: {errs:?}"
            );
        }
        assert!(errors_of(&format!("{zendesk}bulk_after = \"30s\"\n")).is_empty());
    }
}
