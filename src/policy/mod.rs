//! The decision: which tags a customer's numbers earn. A pure function of plain data.
//! `rules.rs` holds the conditions of `policy.rules` and `policy.dispute_when`; `startup.rs`
//! checks the columns they read against `orders.query`.

mod rules;
mod startup;

use rust_decimal::Decimal;

pub use rules::{Condition, Rule, Verdict, BUILT_IN_COLUMNS};
pub use startup::check_columns_at_start;

use crate::domain::{CustomerStats, Tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipTier {
    pub tag: Tag,
    pub min_ltv: Decimal,
}

/// `policy.mode`: `live` writes tags; `shadow` decides and records but writes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Live,
    Shadow,
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// Sorted by `min_ltv`, highest first.
    tiers: Vec<VipTier>,
    dispute_tag: Option<Tag>,
    dispute_overrides_vip: bool,
    mode: Mode,
    /// `policy.dispute_when`; `None` is the default, `disputes > 0`.
    dispute_when: Option<Condition>,
    /// `policy.rules`, in config order.
    rules: Vec<Rule>,
    /// `policy.remove_stale_tags`.
    remove_stale_tags: bool,
}

impl Policy {
    pub fn new(
        mut tiers: Vec<VipTier>,
        dispute_tag: Option<Tag>,
        dispute_overrides_vip: bool,
    ) -> Policy {
        tiers.sort_by_key(|t| std::cmp::Reverse(t.min_ltv));
        Policy {
            tiers,
            dispute_tag,
            dispute_overrides_vip,
            mode: Mode::Live,
            dispute_when: None,
            rules: Vec::new(),
            remove_stale_tags: true,
        }
    }

    /// Tags customers by `policy.rules` too.
    pub fn with_rules(mut self, rules: Vec<Rule>) -> Policy {
        self.rules = rules;
        self
    }

    /// A disputer is whoever `when` holds for (instead of `disputes > 0`).
    pub fn with_dispute_condition(mut self, when: Condition) -> Policy {
        self.dispute_when = Some(when);
        self
    }

    /// Whether the worker removes the policy's own tags that a decision no longer gives.
    pub fn with_remove_stale_tags(mut self, remove: bool) -> Policy {
        self.remove_stale_tags = remove;
        self
    }

    pub fn remove_stale_tags(&self) -> bool {
        self.remove_stale_tags
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The extra columns of `orders.query` the conditions read, each with the config key that
    /// reads it (for the start-up check against the query's columns).
    pub fn columns_read(&self) -> Vec<(String, String)> {
        let mut read: Vec<(String, String)> = Vec::new();
        let mut add = |key: String, c: &Condition| {
            for col in c.columns() {
                if !BUILT_IN_COLUMNS.contains(&col.as_str()) {
                    read.push((key.clone(), col));
                }
            }
        };
        if let Some(c) = &self.dispute_when {
            add("policy.dispute_when".into(), c);
        }
        for (i, r) in self.rules.iter().enumerate() {
            add(format!("policy.rules[{i}].when"), &r.when);
        }
        read
    }

    pub fn with_mode(mut self, mode: Mode) -> Policy {
        self.mode = mode;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn tiers(&self) -> &[VipTier] {
        &self.tiers
    }

    pub fn dispute_tag(&self) -> Option<&Tag> {
        self.dispute_tag.as_ref()
    }

    /// One error per condition that reads a column `orders.query` does not return.
    pub fn unknown_columns(&self, query_columns: &[String]) -> Vec<String> {
        self.columns_read()
            .into_iter()
            .filter(|(_, col)| !query_columns.iter().any(|q| q.eq_ignore_ascii_case(col)))
            .map(|(key, col)| {
                format!(
                    "{key}: unknown column `{col}` (orders.query returns: {})",
                    query_columns.join(", ")
                )
            })
            .collect()
    }

    /// Every tag this policy can ever write (for the trigger's nullifying condition).
    pub fn all_tags(&self) -> Vec<Tag> {
        let mut tags: Vec<Tag> = self.tiers.iter().map(|t| t.tag.clone()).collect();
        tags.extend(self.dispute_tag.clone());
        tags.extend(self.rules.iter().map(|r| r.tag.clone()));
        tags.sort();
        tags.dedup();
        tags
    }

    /// Tags to add for a known customer; an unknown customer has no facts and gets none.
    ///
    /// - the highest tier whose `min_ltv <= ltv` (at most one VIP tag);
    /// - the dispute tag when `disputes > 0` (if one is configured);
    /// - with `dispute_overrides_vip`, a disputer gets the dispute tag only.
    pub fn decide(&self, facts: &CustomerStats) -> Vec<Tag> {
        self.evaluate(facts).tags()
    }

    /// The decision with its reasons, for people (`ltv-tagger explain`).
    pub fn explain(&self, facts: &CustomerStats) -> Decision {
        let e = self.evaluate(facts);
        let mut reasons = Vec::new();
        match (e.tier, self.tiers.last()) {
            (Some(t), _) => reasons.push(format!("{} ≥ {} → {}", facts.ltv, t.min_ltv, t.tag)),
            (None, Some(lowest)) => reasons.push(format!(
                "{} < {} (the lowest tier, {}): no VIP tag",
                facts.ltv, lowest.min_ltv, lowest.tag
            )),
            (None, None) => reasons.push("no VIP tiers configured".into()),
        }
        if e.disputer {
            let why = e.dispute_reason(facts);
            match &self.dispute_tag {
                Some(tag) => reasons.push(format!("{why} → {tag}")),
                None => reasons.push(format!(
                    "{why}, but policy.dispute_tag is empty: no dispute tag"
                )),
            }
        } else if let (Some(v), Some(tag)) = (&e.dispute_verdict, &self.dispute_tag) {
            if v.error.is_some() {
                reasons.push(format!("{tag}: {}", v.describe()));
            }
        }
        if let (true, Some(t)) = (e.overridden, e.tier) {
            reasons.push(format!(
                "dispute override (policy.dispute_overrides_vip): {} removed",
                t.tag
            ));
        }
        for (rule, verdict) in self.rules.iter().zip(&e.rules) {
            reasons.push(match (verdict.matched, verdict.error.is_some()) {
                (true, _) => format!("{}: {}", rule.tag, verdict.describe()),
                (false, false) => format!("{}: not tagged: {}", rule.tag, verdict.describe()),
                (false, true) => format!("{}: {}", rule.tag, verdict.describe()),
            });
        }
        Decision {
            tags: e.tags(),
            reasons,
        }
    }

    fn evaluate<'a>(&'a self, facts: &CustomerStats) -> Evaluation<'a> {
        let dispute_verdict = self.dispute_when.as_ref().map(|c| c.eval(facts));
        let disputer = match &dispute_verdict {
            Some(v) => v.matched,
            None => facts.disputes > 0,
        };
        Evaluation {
            tier: self.tiers.iter().find(|t| facts.ltv >= t.min_ltv),
            disputer,
            overridden: disputer && self.dispute_overrides_vip,
            dispute_tag: self.dispute_tag.as_ref(),
            dispute_verdict,
            rules: self.rules.iter().map(|r| r.when.eval(facts)).collect(),
            rule_tags: self.rules.iter().map(|r| &r.tag).collect(),
        }
    }
}

/// The tags decided and why, one line per reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub tags: Vec<Tag>,
    pub reasons: Vec<String>,
}

/// What the rules found, before it becomes tags.
struct Evaluation<'a> {
    /// The highest tier reached by the LTV (kept even when the dispute override removes it).
    tier: Option<&'a VipTier>,
    disputer: bool,
    /// A disputer whose VIP tier is removed by `dispute_overrides_vip`.
    overridden: bool,
    dispute_tag: Option<&'a Tag>,
    /// `policy.dispute_when`'s verdict, when one is configured.
    dispute_verdict: Option<Verdict>,
    /// One verdict per rule, in config order, beside its tag.
    rules: Vec<Verdict>,
    rule_tags: Vec<&'a Tag>,
}

impl Evaluation<'_> {
    fn dispute_reason(&self, facts: &CustomerStats) -> String {
        match &self.dispute_verdict {
            Some(v) => v.describe(),
            None => format!("disputes {} > 0", facts.disputes),
        }
    }

    fn tags(&self) -> Vec<Tag> {
        let mut tags = Vec::new();
        if let (false, Some(t)) = (self.overridden, self.tier) {
            tags.push(t.tag.clone());
        }
        if let (true, Some(t)) = (self.disputer, self.dispute_tag) {
            tags.push(t.clone());
        }
        for (tag, verdict) in self.rule_tags.iter().zip(&self.rules) {
            if verdict.matched && !tags.contains(tag) {
                tags.push((*tag).clone());
            }
        }
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(s: &str) -> Tag {
        Tag::parse(s).expect("valid tag")
    }

    fn policy(overrides: bool) -> Policy {
        Policy::new(
            vec![
                VipTier {
                    tag: tag("vip"),
                    min_ltv: Decimal::new(500, 0),
                },
                VipTier {
                    tag: tag("vip-gold"),
                    min_ltv: Decimal::new(2500, 0),
                },
            ],
            Some(tag("dispute")),
            overrides,
        )
    }

    fn facts(ltv: &str, disputes: i64) -> CustomerStats {
        CustomerStats {
            ltv: ltv.parse().expect("decimal"),
            orders: 1,
            disputes,
            extra: Default::default(),
        }
    }

    fn names(tags: Vec<Tag>) -> Vec<String> {
        tags.into_iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn below_every_tier_gets_nothing() {
        assert!(policy(true).decide(&facts("499.99", 0)).is_empty());
        assert!(policy(true).decide(&facts("0", 0)).is_empty());
        assert!(policy(true).decide(&facts("-20", 0)).is_empty());
    }

    #[test]
    fn a_threshold_is_inclusive_and_the_highest_tier_wins() {
        assert_eq!(names(policy(true).decide(&facts("500", 0))), ["vip"]);
        assert_eq!(names(policy(true).decide(&facts("2499.99", 0))), ["vip"]);
        assert_eq!(
            names(policy(true).decide(&facts("2500.00", 0))),
            ["vip-gold"]
        );
        assert_eq!(
            names(policy(true).decide(&facts("1000000", 0))),
            ["vip-gold"]
        );
    }

    #[test]
    fn a_disputer_gets_only_the_dispute_tag_when_it_overrides_vip() {
        assert_eq!(names(policy(true).decide(&facts("9000", 1))), ["dispute"]);
        assert_eq!(names(policy(true).decide(&facts("10", 3))), ["dispute"]);
    }

    #[test]
    fn a_disputer_keeps_the_vip_tag_when_it_does_not_override() {
        assert_eq!(
            names(policy(false).decide(&facts("9000", 1))),
            ["vip-gold", "dispute"]
        );
        assert_eq!(names(policy(false).decide(&facts("10", 1))), ["dispute"]);
    }

    #[test]
    fn no_dispute_tag_configured_means_disputers_are_not_tagged() {
        let p = Policy::new(policy(true).tiers, None, true);
        assert!(p.decide(&facts("9000", 2)).is_empty());
        let p = Policy::new(policy(false).tiers, None, false);
        assert_eq!(names(p.decide(&facts("9000", 2))), ["vip-gold"]);
    }

    #[test]
    fn tier_order_in_config_does_not_matter() {
        let mut tiers = policy(true).tiers;
        tiers.reverse();
        let p = Policy::new(tiers, Some(tag("dispute")), true);
        assert_eq!(names(p.decide(&facts("3000", 0))), ["vip-gold"]);
        assert_eq!(names(p.all_tags()), ["dispute", "vip", "vip-gold"]);
    }

    proptest! {
        #[test]
        fn at_most_one_vip_tag_and_it_is_the_best_reachable(cents in -1_000_000i64..10_000_000, disputes in 0i64..3, overrides: bool) {
            let p = policy(overrides);
            let f = CustomerStats { ltv: Decimal::new(cents, 2), orders: 1, disputes, extra: Default::default() };
            let tags = p.decide(&f);
            let vip: Vec<_> = tags.iter().filter(|t| t.as_str().starts_with("vip")).collect();
            prop_assert!(vip.len() <= 1);
            let expected = if disputes > 0 && overrides { None }
                else if f.ltv >= Decimal::new(2500, 0) { Some("vip-gold") }
                else if f.ltv >= Decimal::new(500, 0) { Some("vip") }
                else { None };
            prop_assert_eq!(vip.first().map(|t| t.as_str()), expected);
            prop_assert_eq!(tags.iter().any(|t| t.as_str() == "dispute"), disputes > 0);
        }
    }

    #[test]
    fn explain_names_the_threshold_and_the_override() {
        let d = policy(true).explain(&facts("3000.00", 0));
        assert_eq!(names(d.tags), ["vip-gold"]);
        assert_eq!(d.reasons, ["3000.00 ≥ 2500 → vip-gold"]);
        let d = policy(true).explain(&facts("9000", 2));
        assert_eq!(names(d.tags), ["dispute"]);
        assert_eq!(
            d.reasons,
            [
                "9000 ≥ 2500 → vip-gold",
                "disputes 2 > 0 → dispute",
                "dispute override (policy.dispute_overrides_vip): vip-gold removed"
            ]
        );
        let d = policy(true).explain(&facts("20", 0));
        assert!(d.tags.is_empty());
        assert_eq!(d.reasons, ["20 < 500 (the lowest tier, vip): no VIP tag"]);
    }

    #[test]
    fn explain_lists_each_rule_with_the_comparisons_that_decided_it_as_the_readme_shows() {
        use crate::domain::ColumnValue;
        let rule = |t: &str, when: &str| Rule {
            tag: tag(t),
            when: Condition::parse(when).expect("condition"),
        };
        let p = policy(true).with_rules(vec![
            rule("serial-returner", "orders >= 3 && refunded / gross >= 0.5"),
            rule("first-order", "orders == 1"),
        ]);
        let number = |s: &str| ColumnValue::Number(s.parse().expect("decimal"));
        let f = CustomerStats {
            ltv: "2850.00".parse().expect("decimal"),
            orders: 4,
            disputes: 0,
            extra: [
                ("gross".to_string(), number("7500.00")),
                ("refunded".to_string(), number("4650.00")),
            ]
            .into(),
        };
        let d = p.explain(&f);
        assert_eq!(names(d.tags), ["vip-gold", "serial-returner"]);
        assert_eq!(
            d.reasons,
            [
                "2850.00 ≥ 2500 → vip-gold",
                "serial-returner: orders 4 ≥ 3 and 0.62 ≥ 0.5",
                "first-order: not tagged: orders 4 ≠ 1"
            ]
        );
        assert_eq!(
            names(p.all_tags()),
            [
                "dispute",
                "first-order",
                "serial-returner",
                "vip",
                "vip-gold"
            ]
        );
    }

    #[test]
    fn a_won_dispute_is_not_a_dispute_when_the_condition_says_so() {
        use crate::domain::ColumnValue;
        let p = policy(true).with_dispute_condition(
            Condition::parse("disputes - disputes_won > 0").expect("condition"),
        );
        let mut f = facts("9000", 1);
        f.extra
            .insert("disputes_won".into(), ColumnValue::Number(1.into()));
        assert_eq!(names(p.decide(&f)), ["vip-gold"]);
        f.extra
            .insert("disputes_won".into(), ColumnValue::Number(0.into()));
        assert_eq!(names(p.decide(&f)), ["dispute"]);
    }
}
