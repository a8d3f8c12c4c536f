//! Unit tests of the figures on a ten-customer shop whose answers are worked out by hand.

use super::*;
use crate::policy::VipTier;

fn tag(s: &str) -> Tag {
    Tag::parse(s).expect("tag")
}

fn policy(vip: i64, gold: i64) -> Policy {
    Policy::new(
        vec![
            VipTier {
                tag: tag("vip"),
                min_ltv: Decimal::from(vip),
            },
            VipTier {
                tag: tag("vip-gold"),
                min_ltv: Decimal::from(gold),
            },
        ],
        Some(tag("dispute")),
        true,
    )
}

fn customer(ltv: i64, disputes: i64) -> CustomerStats {
    CustomerStats {
        ltv: Decimal::from(ltv),
        orders: 1,
        disputes,
    }
}

/// LTV 100, 200, …, 1000; the 1000 customer has a dispute.
fn tally<'p>(current: &'p Policy, candidate: Option<&'p Policy>) -> Tally<'p> {
    let mut t = Tally::new(current, candidate);
    for i in (1..=10).rev() {
        t.add(&customer(i * 100, i64::from(i == 10)));
    }
    t
}

fn d(n: i64) -> Option<Decimal> {
    Some(Decimal::from(n))
}

#[test]
fn customers_are_counted_into_the_tag_the_policy_gives_them_with_the_dispute_override() {
    let current = policy(500, 900);
    let (f, ltvs) = tally(&current, None).finish("30days", &[]);
    assert_eq!((f.customers, f.revenue), (10, Decimal::from(5500)));
    assert_eq!(ltvs.first().copied(), d(100));
    let tiers: Vec<_> = f
        .current
        .tiers
        .iter()
        .map(|t| (t.tag.as_str(), t.customers))
        .collect();
    assert_eq!(tiers, [("vip-gold", 1), ("vip", 4)]);
    let vip = &f.current.tiers[1];
    assert!((vip.customer_share - 0.4).abs() < 1e-12);
    assert!((vip.revenue_share - 2600.0 / 5500.0).abs() < 1e-12);
    assert_eq!(f.current.disputers.customers, 1);
    assert_eq!(f.current.disputers.tag.as_deref(), Some("dispute"));
    assert!((f.current.disputers.revenue_share - 1000.0 / 5500.0).abs() < 1e-12);
    assert_eq!(f.current.untagged.customers, 4);
    assert!(f.candidate.is_none() && f.changes.is_none());
}

#[test]
fn percentiles_are_nearest_rank_and_the_top_shares_count_from_the_top() {
    let current = policy(500, 900);
    let (f, _) = tally(&current, None).finish("30days", &[]);
    let p = &f.distribution.percentiles;
    assert_eq!(
        (p.p50, p.p75, p.p90, p.p95, p.p99),
        (d(500), d(800), d(900), d(1000), d(1000))
    );
    let t = &f.distribution.top_starts_at;
    assert_eq!(
        (t.top_1pct, t.top_5pct, t.top_10pct, t.top_20pct),
        (d(1000), d(1000), d(1000), d(900))
    );
    let r = f.distribution.revenue_80pct.expect("revenue");
    // 1000 + 900 + 800 + 700 + 600 + 500 = 4500 ≥ 80 % of 5500 (4400).
    assert_eq!((r.min_ltv, r.customers), (Decimal::from(500), 6));
}

#[test]
fn a_candidate_shows_who_moves_and_which_recent_tickets_would_change() {
    let (current, candidate) = (policy(500, 900), policy(300, 900));
    let recent = [
        RecentTicket {
            stats: customer(350, 0),
            tags_decided: vec![],
        },
        RecentTicket {
            stats: customer(950, 0),
            tags_decided: vec!["vip-gold".into()],
        },
    ];
    let (f, _) = tally(&current, Some(&candidate)).finish("7days", &recent);
    let changes: Vec<_> = f
        .changes
        .expect("changes")
        .into_iter()
        .map(|c| (c.from, c.to, c.customers, c.tickets))
        .collect();
    assert_eq!(changes, [(vec![], vec!["vip".to_string()], 2, 1)]);
    assert_eq!(f.recent_tickets.tickets, 2);
    assert_eq!(f.current.recent_tickets.get(UNTAGGED), Some(&1));
    let candidate = f.candidate.expect("candidate");
    assert_eq!(candidate.tiers[1].customers, 6);
    assert_eq!(candidate.recent_tickets.get("vip"), Some(&1));
    assert_eq!(candidate.recent_tickets.get(UNTAGGED), None);
}

#[test]
fn an_empty_shop_has_no_percentiles_and_zero_shares() {
    let current = policy(500, 900);
    let (f, _) = Tally::new(&current, None).finish("30days", &[]);
    assert_eq!(f.customers, 0);
    assert!(f.distribution.percentiles.p50.is_none());
    assert!(f.distribution.revenue_80pct.is_none());
    assert_eq!(f.current.tiers[0].customer_share, 0.0);
}
