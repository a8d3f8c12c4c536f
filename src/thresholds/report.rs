//! The `thresholds` text report: tables an operator reads in a terminal.

use std::fmt::Write;

use rust_decimal::Decimal;

use super::{Figures, GroupFigures, PolicyFigures};

fn pct(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

fn money(d: Option<Decimal>) -> String {
    d.map(|d| d.round_dp(2).to_string())
        .unwrap_or_else(|| "-".into())
}

/// The whole report as text.
pub fn text(f: &Figures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} customers, revenue (sum of LTV) {}",
        f.customers,
        f.revenue.round_dp(2)
    );
    let _ = writeln!(out, "\nLTV distribution");
    let p = &f.distribution.percentiles;
    for (name, v) in [
        ("p50", p.p50),
        ("p75", p.p75),
        ("p90", p.p90),
        ("p95", p.p95),
        ("p99", p.p99),
    ] {
        let _ = writeln!(out, "  {name:<28} {:>14}", money(v));
    }
    let t = &f.distribution.top_starts_at;
    for (name, v) in [
        ("1", t.top_1pct),
        ("5", t.top_5pct),
        ("10", t.top_10pct),
        ("20", t.top_20pct),
    ] {
        let _ = writeln!(
            out,
            "  {:<28} {:>14}",
            format!("top {name} % start at"),
            money(v)
        );
    }
    match &f.distribution.revenue_80pct {
        Some(r) => {
            let _ = writeln!(
                out,
                "  {:<28} {:>14}  ({} customers, {})",
                "80 % of revenue from LTV ≥",
                money(Some(r.min_ltv)),
                r.customers,
                pct(r.customer_share)
            );
        }
        None => {
            let _ = writeln!(out, "  80 % of revenue: - (no positive revenue)");
        }
    }
    section(&mut out, "current policy", &f.current);
    if let Some(c) = &f.candidate {
        section(&mut out, "candidate policy", c);
    }
    let _ = writeln!(
        out,
        "\nrecent tickets (audit log, last {}): {}",
        f.recent_tickets.since, f.recent_tickets.tickets
    );
    let mut rows = vec![("current", &f.current)];
    if let Some(c) = &f.candidate {
        rows.push(("candidate", c));
    }
    for (name, p) in rows {
        let by_tag: Vec<String> = p
            .recent_tickets
            .iter()
            .map(|(tag, n)| format!("{tag} {n}"))
            .collect();
        if !by_tag.is_empty() {
            let _ = writeln!(out, "  {name:<10} {}", by_tag.join(", "));
        }
    }
    if let Some(changes) = &f.changes {
        let _ = writeln!(out, "\nchanges (current → candidate)");
        if changes.is_empty() {
            let _ = writeln!(out, "  none: every customer keeps the same tags");
        }
        for c in changes {
            let _ = writeln!(
                out,
                "  {:<30} {:>10} customers {:>8} recent tickets",
                format!("{} → {}", names(&c.from), names(&c.to)),
                c.customers,
                c.tickets
            );
        }
    }
    out
}

fn names(tags: &[String]) -> String {
    if tags.is_empty() {
        "(none)".into()
    } else {
        tags.join("+")
    }
}

fn section(out: &mut String, title: &str, p: &PolicyFigures) {
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "  {:<20} {:>12} {:>12} {:>10} {:>10}",
        "tag", "min_ltv", "customers", "customers", "revenue"
    );
    for t in &p.tiers {
        let _ = writeln!(
            out,
            "  {:<20} {:>12} {:>12} {:>10} {:>10}",
            t.tag,
            t.min_ltv,
            t.customers,
            pct(t.customer_share),
            pct(t.revenue_share)
        );
    }
    let group = |out: &mut String, label: String, g: &GroupFigures| {
        let _ = writeln!(
            out,
            "  {:<20} {:>12} {:>12} {:>10} {:>10}",
            label,
            "",
            g.customers,
            pct(g.customer_share),
            pct(g.revenue_share)
        );
    };
    let disputers = match &p.disputers.tag {
        Some(tag) => format!("{tag} (disputers)"),
        None => "disputers (untagged)".into(),
    };
    group(out, disputers, &p.disputers);
    group(out, "untagged".into(), &p.untagged);
}
