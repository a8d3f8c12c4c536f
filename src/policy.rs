//! The decision: which tags a customer's numbers earn. A pure function of plain data.

use rust_decimal::Decimal;

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
        }
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

    /// Every tag this policy can ever write (for the trigger's nullifying condition).
    pub fn all_tags(&self) -> Vec<Tag> {
        let mut tags: Vec<Tag> = self.tiers.iter().map(|t| t.tag.clone()).collect();
        tags.extend(self.dispute_tag.clone());
        tags.sort();
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
            match &self.dispute_tag {
                Some(tag) => reasons.push(format!("disputes {} > 0 → {tag}", facts.disputes)),
                None => reasons.push(format!(
                    "disputes {} > 0, but policy.dispute_tag is empty: no dispute tag",
                    facts.disputes
                )),
            }
        }
        if let (true, Some(t)) = (e.overridden, e.tier) {
            reasons.push(format!(
                "dispute override (policy.dispute_overrides_vip): {} removed",
                t.tag
            ));
        }
        Decision {
            tags: e.tags(),
            reasons,
        }
    }

    fn evaluate<'a>(&'a self, facts: &CustomerStats) -> Evaluation<'a> {
        let disputer = facts.disputes > 0;
        Evaluation {
            tier: self.tiers.iter().find(|t| facts.ltv >= t.min_ltv),
            disputer,
            overridden: disputer && self.dispute_overrides_vip,
            dispute_tag: self.dispute_tag.as_ref(),
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
}

impl Evaluation<'_> {
    fn tags(&self) -> Vec<Tag> {
        let mut tags = Vec::new();
        if let (false, Some(t)) = (self.overridden, self.tier) {
            tags.push(t.tag.clone());
        }
        if let (true, Some(t)) = (self.disputer, self.dispute_tag) {
            tags.push(t.clone());
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
            let f = CustomerStats { ltv: Decimal::new(cents, 2), orders: 1, disputes };
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
}
