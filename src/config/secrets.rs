//! Secret resolution: `key` / `key_file` and `url` / `url_file`, file contents trimmed.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::raw::RawSettings;

/// `*.url_file` replaces `*.url`: returns a copy with the file contents in effect, so the result
/// can be checked like an inline URL. A `url` changed from its default (in the file or by an
/// `LTV_TAGGER__…__URL` variable) beside a `url_file` is refused, as for secrets: one of them
/// would be silently ignored.
pub(super) fn resolve_url_files(raw: &RawSettings, errs: &mut Vec<String>) -> RawSettings {
    let mut resolved = raw.clone();
    let defaults = default_urls();
    for ((section, url, file), default) in [
        ("state", &mut resolved.state.url, &raw.state.url_file),
        ("orders", &mut resolved.orders.url, &raw.orders.url_file),
    ]
    .into_iter()
    .zip(defaults)
    {
        if let Some(path) = file {
            if url.trim() != default.trim() {
                errs.push(format!(
                    "{section}.url / {section}.url_file: set one of them, not both (check the config file and LTV_TAGGER__{}__URL; url_file is {})",
                    section.to_ascii_uppercase(),
                    path.display()
                ));
                continue;
            }
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
    resolved
}

/// The built-in `state.url` and `orders.url`, from `config/default.toml`.
fn default_urls() -> [String; 2] {
    let defaults: toml::Table = toml::from_str(super::DEFAULT_TOML).unwrap_or_default();
    let url = |section: &str| {
        defaults
            .get(section)
            .and_then(|s| s.get("url"))
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    [url("state"), url("orders")]
}

/// Resolves `key` / `key_file`: exactly one of them may be set. Both are trimmed alike; a value
/// that is only whitespace is refused (it would authenticate nothing, or everything).
pub(super) fn secret(
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
        None if inline_set => {
            let trimmed = inline.expose_secret().trim();
            if trimmed.is_empty() {
                errs.push(format!(
                    "{section}.{key}: is only whitespace; give the secret (or {section}.{key}_file)"
                ));
                None
            } else {
                Some(SecretString::from(trimmed.to_string()))
            }
        }
        None => {
            errs.push(format!(
                "{section}.{key}: required (or {section}.{key}_file) when {section} is configured"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::test_support::{errors_of, raw, MINIMAL};

    #[test]
    fn whitespace_only_inline_secrets_are_refused_and_inline_secrets_are_trimmed() {
        let errs = errors_of(&MINIMAL.replace("\"tok-123\"", "\"  \\t \""));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("zendesk.api_token: is only whitespace")),
            "{errs:?}"
        );
        let s = raw(&MINIMAL.replace("\"tok-123\"", "\" tok-123\\n\""))
            .and_then(|r| r.validate())
            .unwrap_or_else(|e| panic!("{e}"));
        let z = s.zendesk.expect("zendesk");
        assert_eq!(z.api_token.expose_secret(), "tok-123");
    }

    #[test]
    fn a_url_beside_a_url_file_is_refused_whoever_set_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("state_url");
        std::fs::write(&f, "sqlite://from-file.db\n").expect("write");
        let both = format!(
            "{MINIMAL}\n[state]\nurl = \"sqlite://inline.db\"\nurl_file = {:?}\n",
            f.display().to_string()
        );
        let errs = errors_of(&both);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("state.url / state.url_file: set one of them, not both")),
            "{errs:?}"
        );
        // The file alone is fine: the built-in default url does not count as set.
        let alone = format!(
            "{MINIMAL}\n[state]\nurl_file = {:?}\n",
            f.display().to_string()
        );
        let s = raw(&alone)
            .and_then(|r| r.validate())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.state.url, "sqlite://from-file.db");
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
}
