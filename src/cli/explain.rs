//! `explain EMAIL…`: what the service would decide for each customer and why, writing nothing; needs only the order DB.

use serde::Serialize;

use super::Format;
use crate::config::Settings;
use crate::domain::{CustomerEmail, CustomerStats, Tag};
use crate::orders::OrderDb;

/// One customer's explanation, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct Explained {
    email: String,
    /// False when the order query returned no row (the customer counts as LTV 0, no tags).
    known: bool,
    ltv: String,
    orders: i64,
    disputes: i64,
    tags: Vec<String>,
    reasons: Vec<String>,
}

pub(super) async fn explain(
    s: Settings,
    emails: Vec<String>,
    format: Format,
) -> anyhow::Result<()> {
    // Every address is checked before the first query.
    let emails = emails
        .iter()
        .map(|e| CustomerEmail::parse(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let db = OrderDb::connect_lazy(&s.orders_options())?;
    let mut out = Vec::with_capacity(emails.len());
    for email in emails {
        let found = db.lookup(email.as_str()).await?;
        let known = found.is_some();
        let stats = found.unwrap_or_default();
        let (tags, reasons) = if known {
            let d = s.policy.explain(&stats);
            (d.tags, d.reasons)
        } else {
            // The worker's rule: an unknown customer is never tagged.
            (
                Vec::new(),
                vec![
                    "unknown customer (the order query returned no row): counts as LTV 0, no tags"
                        .into(),
                ],
            )
        };
        out.push(explained(email, known, &stats, tags, reasons));
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Text => {
            for e in &out {
                println!(
                    "{}: ltv {} over {} orders, {} disputes → tags: {}",
                    e.email,
                    e.ltv,
                    e.orders,
                    e.disputes,
                    if e.tags.is_empty() {
                        "(none)".into()
                    } else {
                        e.tags.join(", ")
                    }
                );
                for r in &e.reasons {
                    println!("  because {r}");
                }
            }
        }
    }
    Ok(())
}

fn explained(
    email: CustomerEmail,
    known: bool,
    stats: &CustomerStats,
    tags: Vec<Tag>,
    reasons: Vec<String>,
) -> Explained {
    Explained {
        email: email.to_string(),
        known,
        ltv: stats.ltv.normalize().to_string(),
        orders: stats.orders,
        disputes: stats.disputes,
        tags: tags.iter().map(Tag::to_string).collect(),
        reasons,
    }
}
