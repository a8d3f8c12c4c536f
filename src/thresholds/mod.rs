//! `thresholds` figures: every customer counted into the tags the policy gives them, the LTV distribution, and the what-if against a candidate policy. Pure: no I/O.
//!
//! Definitions (the README's "Tuning thresholds" repeats them for operators):
//! - a customer is in a tier when the policy's decision ([`Policy::decide`], the worker's own
//!   function) carries that tier's tag, so a disputer removed by the dispute override is not;
//! - `disputers`: customers with at least one dispute; `untagged`: customers given no tag;
//! - `customer_share` = customers / all customers; `revenue_share` = their LTV / all LTV;
//! - percentiles are nearest-rank: `pN` is the LTV of the customer at rank ⌈N·n/100⌉ in ascending
//!   order; "the top k % start at" is the LTV of the customer at rank ⌈k·n/100⌉ in descending
//!   order; `revenue_80pct` is the smallest LTV among the fewest top customers whose LTV adds up
//!   to 80 % of all LTV;
//! - recent tickets: audit rows of the last `--since` that recorded the customer's numbers; the
//!   current policy's column shows the tags decided then, a candidate's the tags it decides from
//!   the same numbers; `changes[].tickets` counts the tickets whose tags differ.

pub mod plot;
pub mod report;

use std::collections::{BTreeMap, HashMap};

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::{CustomerStats, Tag};
use crate::policy::Policy;

/// A set of tags, sorted: the class a customer or a ticket falls into.
type TagSet = Vec<String>;

fn tag_set(tags: Vec<Tag>) -> TagSet {
    let mut names: Vec<String> = tags.into_iter().map(|t| t.to_string()).collect();
    names.sort();
    names
}

#[derive(Debug, Default, Clone, Copy)]
struct Group {
    customers: u64,
    revenue: Decimal,
}

impl Group {
    fn add(&mut self, ltv: Decimal) {
        self.customers += 1;
        self.revenue += ltv;
    }
}

/// One recent decision from the audit log: the numbers it used and the tags it decided.
#[derive(Debug, Clone)]
pub struct RecentTicket {
    pub stats: CustomerStats,
    pub tags_decided: Vec<String>,
}

/// Accumulates customers one at a time, as the scan streams them (one `Decimal` kept each).
pub struct Tally<'p> {
    current: &'p Policy,
    candidate: Option<&'p Policy>,
    ltvs: Vec<Decimal>,
    current_classes: HashMap<TagSet, Group>,
    candidate_classes: HashMap<TagSet, Group>,
    disputers: Group,
    moves: HashMap<(TagSet, TagSet), u64>,
}

impl<'p> Tally<'p> {
    pub fn new(current: &'p Policy, candidate: Option<&'p Policy>) -> Tally<'p> {
        Tally {
            current,
            candidate,
            ltvs: Vec::new(),
            current_classes: HashMap::new(),
            candidate_classes: HashMap::new(),
            disputers: Group::default(),
            moves: HashMap::new(),
        }
    }

    pub fn add(&mut self, stats: &CustomerStats) {
        self.ltvs.push(stats.ltv);
        if stats.disputes > 0 {
            self.disputers.add(stats.ltv);
        }
        let now = tag_set(self.current.decide(stats));
        if let Some(candidate) = self.candidate {
            let then = tag_set(candidate.decide(stats));
            self.candidate_classes
                .entry(then.clone())
                .or_default()
                .add(stats.ltv);
            if then != now {
                *self.moves.entry((now.clone(), then)).or_default() += 1;
            }
        }
        self.current_classes.entry(now).or_default().add(stats.ltv);
    }

    /// The figures, with the recent tickets of the audit log; and every LTV, sorted (for the plot).
    pub fn finish(mut self, since: &str, recent: &[RecentTicket]) -> (Figures, Vec<Decimal>) {
        self.ltvs.sort_unstable();
        let revenue: Decimal = self.ltvs.iter().copied().sum();
        let n = self.ltvs.len() as u64;
        let totals = Totals { n, revenue };
        let mut changes: BTreeMap<(TagSet, TagSet), Change> = BTreeMap::new();
        for ((from, to), customers) in &self.moves {
            changes
                .entry((from.clone(), to.clone()))
                .or_insert_with(|| Change::new(from, to))
                .customers = *customers;
        }
        let mut current_tickets = BTreeMap::new();
        let mut candidate_tickets = BTreeMap::new();
        for t in recent {
            let mut decided = t.tags_decided.clone();
            decided.sort();
            count_ticket(&mut current_tickets, &decided);
            if let Some(candidate) = self.candidate {
                let then = tag_set(candidate.decide(&t.stats));
                count_ticket(&mut candidate_tickets, &then);
                if then != decided {
                    changes
                        .entry((decided.clone(), then.clone()))
                        .or_insert_with(|| Change::new(&decided, &then))
                        .tickets += 1;
                }
            }
        }
        let current = policy_figures(
            self.current,
            &self.current_classes,
            self.disputers,
            totals,
            current_tickets,
        );
        let candidate = self.candidate.map(|p| {
            policy_figures(
                p,
                &self.candidate_classes,
                self.disputers,
                totals,
                candidate_tickets,
            )
        });
        let figures = Figures {
            customers: n,
            revenue,
            distribution: distribution(&self.ltvs, revenue),
            recent_tickets: RecentTickets {
                since: since.to_owned(),
                tickets: recent.len() as u64,
            },
            current,
            changes: candidate.as_ref().map(|_| changes.into_values().collect()),
            candidate,
        };
        (figures, self.ltvs)
    }
}

fn count_ticket(by_tag: &mut BTreeMap<String, u64>, tags: &[String]) {
    if tags.is_empty() {
        *by_tag.entry(UNTAGGED.to_owned()).or_default() += 1;
    }
    for t in tags {
        *by_tag.entry(t.clone()).or_default() += 1;
    }
}

/// The key of tickets given no tag in `recent_tickets`.
pub const UNTAGGED: &str = "(none)";

#[derive(Clone, Copy)]
struct Totals {
    n: u64,
    revenue: Decimal,
}

impl Totals {
    fn shares(&self, g: Group) -> (f64, f64) {
        let customer_share = if self.n == 0 {
            0.0
        } else {
            g.customers as f64 / self.n as f64
        };
        let revenue_share = if self.revenue.is_zero() {
            0.0
        } else {
            (g.revenue / self.revenue).to_f64().unwrap_or(0.0)
        };
        (customer_share, revenue_share)
    }
}

fn policy_figures(
    policy: &Policy,
    classes: &HashMap<TagSet, Group>,
    disputers: Group,
    totals: Totals,
    recent_tickets: BTreeMap<String, u64>,
) -> PolicyFigures {
    let group_of = |pick: &dyn Fn(&TagSet) -> bool| {
        let mut g = Group::default();
        for (tags, c) in classes {
            if pick(tags) {
                g.customers += c.customers;
                g.revenue += c.revenue;
            }
        }
        g
    };
    let tiers = policy
        .tiers()
        .iter()
        .map(|t| {
            let g = group_of(&|tags| tags.iter().any(|x| x == t.tag.as_str()));
            let (customer_share, revenue_share) = totals.shares(g);
            TierFigures {
                tag: t.tag.to_string(),
                min_ltv: t.min_ltv,
                customers: g.customers,
                customer_share,
                revenue_share,
            }
        })
        .collect();
    let untagged = group_of(&|tags| tags.is_empty());
    let group = |g: Group, tag: Option<String>| {
        let (customer_share, revenue_share) = totals.shares(g);
        GroupFigures {
            tag,
            customers: g.customers,
            customer_share,
            revenue_share,
        }
    };
    PolicyFigures {
        tiers,
        disputers: group(disputers, policy.dispute_tag().map(Tag::to_string)),
        untagged: group(untagged, None),
        recent_tickets,
    }
}

fn distribution(sorted: &[Decimal], revenue: Decimal) -> Distribution {
    let n = sorted.len();
    // Rank ⌈k·n/100⌉, at least 1.
    let rank = |k: usize| (k * n).div_ceil(100).max(1);
    let ascending = |k: usize| (n > 0).then(|| sorted[rank(k).min(n) - 1]);
    let top = |k: usize| (n > 0).then(|| sorted[n - rank(k).min(n)]);
    let mut revenue_80pct = None;
    if revenue > Decimal::ZERO {
        let goal = revenue * Decimal::new(8, 1);
        let mut sum = Decimal::ZERO;
        for (i, ltv) in sorted.iter().rev().enumerate() {
            sum += *ltv;
            if sum >= goal {
                revenue_80pct = Some(Revenue80 {
                    min_ltv: *ltv,
                    customers: i as u64 + 1,
                    customer_share: (i + 1) as f64 / n as f64,
                });
                break;
            }
        }
    }
    Distribution {
        percentiles: Percentiles {
            p50: ascending(50),
            p75: ascending(75),
            p90: ascending(90),
            p95: ascending(95),
            p99: ascending(99),
        },
        top_starts_at: TopStarts {
            top_1pct: top(1),
            top_5pct: top(5),
            top_10pct: top(10),
            top_20pct: top(20),
        },
        revenue_80pct,
    }
}

/// The `--format json` document (documented in the README, "Tuning thresholds").
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub customers: u64,
    pub revenue: Decimal,
    pub distribution: Distribution,
    pub recent_tickets: RecentTickets,
    pub current: PolicyFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<PolicyFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub percentiles: Percentiles,
    pub top_starts_at: TopStarts,
    pub revenue_80pct: Option<Revenue80>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: Option<Decimal>,
    pub p75: Option<Decimal>,
    pub p90: Option<Decimal>,
    pub p95: Option<Decimal>,
    pub p99: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopStarts {
    pub top_1pct: Option<Decimal>,
    pub top_5pct: Option<Decimal>,
    pub top_10pct: Option<Decimal>,
    pub top_20pct: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Revenue80 {
    pub min_ltv: Decimal,
    pub customers: u64,
    pub customer_share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecentTickets {
    pub since: String,
    pub tickets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyFigures {
    pub tiers: Vec<TierFigures>,
    pub disputers: GroupFigures,
    pub untagged: GroupFigures,
    /// Recent tickets by tag (`(none)`: no tag).
    pub recent_tickets: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierFigures {
    pub tag: String,
    pub min_ltv: Decimal,
    pub customers: u64,
    pub customer_share: f64,
    pub revenue_share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupFigures {
    pub tag: Option<String>,
    pub customers: u64,
    pub customer_share: f64,
    pub revenue_share: f64,
}

/// Customers and recent tickets whose tags move from `from` to `to` under the candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub customers: u64,
    pub tickets: u64,
}

impl Change {
    fn new(from: &[String], to: &[String]) -> Change {
        Change {
            from: from.to_vec(),
            to: to.to_vec(),
            customers: 0,
            tickets: 0,
        }
    }
}

#[cfg(test)]
mod tests;
