//! Validation of the `[policy]` section: tags parse, amounts are exact, tiers are distinct.

use rust_decimal::Decimal;

use crate::config::raw::{Amount, RawPolicy};
use crate::domain::Tag;
use crate::policy::{Condition, Policy, Rule, VipTier};

impl RawPolicy {
    pub(super) fn validate(&self) -> Result<Policy, Vec<String>> {
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
        let dispute_when = Condition::parse(&self.dispute_when)
            .map_err(|e| errs.push(format!("policy.dispute_when: {e}")))
            .ok();
        let rules = self.rules(&tiers, dispute_tag.as_ref(), &mut errs);
        if errs.is_empty() {
            let mut policy = Policy::new(tiers, dispute_tag, self.dispute_overrides_vip)
                .with_mode(self.mode)
                .with_rules(rules)
                .with_remove_stale_tags(self.remove_stale_tags);
            if let Some(when) = dispute_when {
                policy = policy.with_dispute_condition(when);
            }
            Ok(policy)
        } else {
            Err(errs)
        }
    }
}

impl RawPolicy {
    /// `policy.rules[i]`: each tag parses and is its own, each condition parses.
    fn rules(
        &self,
        tiers: &[VipTier],
        dispute_tag: Option<&Tag>,
        errs: &mut Vec<String>,
    ) -> Vec<Rule> {
        let mut rules: Vec<Rule> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("policy.rules[{i}]");
            let tag = Tag::parse(&r.tag).map_err(|e| format!("{key}.tag: {e}"));
            let when = Condition::parse(&r.when).map_err(|e| format!("{key}.when: {e}"));
            match (tag, when) {
                (Ok(tag), Ok(when)) => {
                    if tiers.iter().any(|t| t.tag == tag) || dispute_tag == Some(&tag) {
                        errs.push(format!(
                            "{key}.tag: {:?} is already a VIP tier or the dispute tag",
                            tag.as_str()
                        ));
                    } else if let Some(j) = rules.iter().position(|o| o.tag == tag) {
                        errs.push(format!(
                            "{key}.tag: {:?} is already the tag of policy.rules[{j}]",
                            tag.as_str()
                        ));
                    }
                    rules.push(Rule { tag, when });
                }
                (tag, when) => {
                    errs.extend(tag.err());
                    errs.extend(when.err());
                }
            }
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{errors_of, MINIMAL};

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
    fn a_rule_with_a_syntax_error_or_a_foreign_feature_is_named_by_its_index_and_key() {
        let errs = errors_of(&format!(
            "{MINIMAL}\n[policy]\nrules = [{{ tag = \"ok\", when = \"orders >= 3\" }}, {{ tag = \"bad\", when = \"orders >=\" }}, {{ tag = \"x\", when = \"size(x) > 1\" }}, {{ tag = \"vip\", when = \"orders > 1\" }}]\ndispute_when = \"\"\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("policy.rules[1].when: syntax error")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("policy.rules[2].when:")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("policy.rules[3].tag:")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("policy.dispute_when:")),
            "{errs:?}"
        );
        assert!(!errs.iter().any(|e| e.contains("rules[0]")), "{errs:?}");
    }
}
