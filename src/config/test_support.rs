//! Test helpers shared by the config unit tests: load a TOML snippet over the defaults.

use super::{ConfigError, RawSettings};

pub(super) fn raw(extra: &str) -> Result<RawSettings, ConfigError> {
    let dir = tempfile::tempdir().map_err(|e| ConfigError::Load(e.to_string()))?;
    let path = dir.path().join("c.toml");
    std::fs::write(&path, extra).map_err(|e| ConfigError::Load(e.to_string()))?;
    RawSettings::load(Some(&path), "LTV_TAGGER_UNIT_TEST_UNUSED")
}

pub(super) const MINIMAL: &str = r#"
[orders]
url = "sqlite://shop.db"
[zendesk]
subdomain = "acme"
email = "agent@acme.com"
api_token = "tok-123"
webhook_secret = "whsec-456"
"#;

pub(super) fn errors_of(toml: &str) -> Vec<String> {
    match raw(toml).and_then(|r| r.validate()) {
        Ok(_) => vec![],
        Err(ConfigError::Invalid(e)) => e,
        Err(e) => vec![e.to_string()],
    }
}
