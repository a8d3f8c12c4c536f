//! `[backfill]`: the share of the helpdesk account's rate budget `ltv-tagger backfill` may use.

use crate::config::BackfillSettings;

/// `backfill.budget_share`: 0 < x ≤ 1.
pub(super) fn backfill(b: &BackfillSettings, errs: &mut Vec<String>) {
    if !(b.budget_share > 0.0 && b.budget_share <= 1.0) {
        errs.push(format!(
            "backfill.budget_share: {} is not a share of the rate budget (0 < x ≤ 1)",
            b.budget_share
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{errors_of, raw, MINIMAL};

    #[test]
    fn budget_share_defaults_to_half() {
        let s = raw(MINIMAL)
            .and_then(|r| r.validate())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.backfill.budget_share, 0.5);
    }

    #[test]
    fn budget_share_outside_zero_to_one_is_refused_by_name() {
        for bad in ["0", "-0.5", "1.01", "nan"] {
            let errs = errors_of(&format!("{MINIMAL}[backfill]\nbudget_share = {bad}\n"));
            assert!(
                errs.iter().any(|e| e.starts_with("backfill.budget_share:")),
                "{bad}: {errs:?}"
            );
        }
        assert!(errors_of(&format!("{MINIMAL}[backfill]\nbudget_share = 1.0\n")).is_empty());
    }
}
