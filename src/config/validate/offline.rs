//! Validation for the offline tools (`explain`, `thresholds`, `audit`): every section but the helpdesks, so no helpdesk secret is needed.

use std::path::Path;

use serde::Deserialize;

use super::super::raw::{RawPolicy, RawSettings};
use super::super::secrets::resolve_url_files;
use super::super::{Settings, DEFAULT_TOML};
use super::ConfigError;
use crate::policy::Policy;

impl RawSettings {
    /// Like [`RawSettings::validate`], but the `[zendesk]` and `[gorgias]` sections are neither
    /// checked nor kept (`zendesk`/`gorgias` are `None`).
    pub fn validate_offline(&self) -> Result<Settings, ConfigError> {
        let mut errs = Vec::new();
        let this = &resolve_url_files(self, &mut errs);
        super::server(&this.server, &mut errs);
        super::state(&this.state, &mut errs);
        super::worker(&this.worker, &mut errs);
        super::orders(&this.orders, &mut errs);
        super::backfill(&this.backfill, &mut errs);
        let policy = this.policy.validate().map_err(|mut e| errs.append(&mut e));
        match policy {
            Ok(policy) if errs.is_empty() => Ok(Settings {
                server: this.server.clone(),
                state: this.state.clone(),
                worker: this.worker.clone(),
                orders: this.orders.clone(),
                policy,
                backfill: this.backfill.clone(),
                zendesk: None,
                gorgias: None,
            }),
            _ => Err(ConfigError::Invalid(errs)),
        }
    }
}

#[derive(Deserialize)]
struct PolicyOnly {
    policy: RawPolicy,
}

/// The `[policy]` of another config file (`thresholds --candidate FILE`), over the built-in
/// defaults; the file's other sections are ignored, and so is the environment.
pub fn load_policy(path: &Path) -> Result<Policy, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::Load(format!(
            "--candidate {}: no such file",
            path.display()
        )));
    }
    let merged = config::Config::builder()
        .add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .add_source(config::File::from(path.to_path_buf()).format(config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<PolicyOnly>())
        .map_err(|e| ConfigError::Load(format!("--candidate {}: {e}", path.display())))?;
    merged.policy.validate().map_err(|errs| {
        ConfigError::Invalid(
            errs.into_iter()
                .map(|e| format!("--candidate {}: {e}", path.display()))
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::raw;

    #[test]
    fn the_offline_tools_need_no_helpdesk() {
        let r = raw("[orders]\nurl = \"sqlite://shop.db\"\n").expect("loads");
        assert!(r.validate().is_err());
        let s = r.validate_offline().unwrap_or_else(|e| panic!("{e}"));
        assert!(s.zendesk.is_none() && s.gorgias.is_none());
    }

    #[test]
    fn a_candidate_file_with_a_bad_tier_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("candidate.toml");
        std::fs::write(
            &path,
            "[policy]\nvip_tiers = [ { tag = \"vip\", min_ltv = 1.5 } ]\n",
        )
        .expect("write");
        let e = super::load_policy(&path).unwrap_err().to_string();
        assert!(e.contains("policy.vip_tiers[0].min_ltv"), "{e}");
        std::fs::write(
            &path,
            "[policy]\nvip_tiers = [ { tag = \"vip\", min_ltv = \"300\" } ]\n",
        )
        .expect("write");
        let p = super::load_policy(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.tiers().len(), 1);
    }
}
