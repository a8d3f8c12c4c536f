//! `state.url`: a supported scheme, and a store that survives a restart (no in-memory SQLite).

use crate::config::redact::redact_url_password;

/// Checks the state DB URL. A value without a scheme is not echoed: it may be a bare password.
pub(super) fn state_url(url: &str, errs: &mut Vec<String>) {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        errs.push(
            "state.url: must start with sqlite:// or postgres:// (the value is not shown: it may hold a password)"
                .into(),
        );
        return;
    };
    match scheme {
        "postgres" | "postgresql" => {}
        "sqlite" => {
            if let Some(why) = forgets_on_restart(rest) {
                errs.push(format!(
                    "state.url: {:?} is {why}: the inbox would forget every accepted webhook on restart; give a file, e.g. \"sqlite://data/ltv-tagger.db\"",
                    redact_url_password(url)
                ));
            }
        }
        _ => errs.push(format!(
            "state.url: {:?} must start with sqlite:// or postgres://",
            redact_url_password(url)
        )),
    }
}

/// Why a `sqlite://` URL (after the scheme) names no durable file, if it does not.
fn forgets_on_restart(rest: &str) -> Option<&'static str> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.trim().is_empty() {
        return Some("an in-memory database (no file path)");
    }
    if path.trim() == ":memory:" {
        return Some("an in-memory database (:memory:)");
    }
    let memory_mode = query.split('&').any(|kv| {
        kv.split_once('=').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("mode") && v.eq_ignore_ascii_case("memory")
        })
    });
    memory_mode.then_some("an in-memory database (mode=memory)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(url: &str) -> Vec<String> {
        let mut errs = vec![];
        state_url(url, &mut errs);
        errs
    }

    #[test]
    fn in_memory_sqlite_state_stores_are_refused() {
        for url in [
            "sqlite://",
            "sqlite://?mode=memory",
            "sqlite://:memory:",
            "sqlite://x.db?mode=memory&cache=shared",
            "sqlite://x.db?MODE=Memory",
        ] {
            let errs = errors(url);
            assert_eq!(errs.len(), 1, "{url} accepted");
            assert!(errs[0].contains("in-memory database"), "{errs:?}");
        }
        for url in [
            "sqlite://data/ltv.db",
            "sqlite:///var/lib/ltv.db?mode=rwc",
            "postgres://u:p@db/state",
            "postgresql://db/state",
        ] {
            assert!(errors(url).is_empty(), "{url} refused: {:?}", errors(url));
        }
    }

    #[test]
    fn a_url_without_a_scheme_is_refused_without_echoing_it() {
        let errs = errors("reader:hunter2@db/state");
        assert_eq!(errs.len(), 1);
        assert!(!errs[0].contains("hunter2"), "{errs:?}");
        let errs = errors("mysql://reader:hunter2@db/state");
        assert!(
            errs[0].starts_with("state.url:") && !errs[0].contains("hunter2"),
            "{errs:?}"
        );
    }
}
