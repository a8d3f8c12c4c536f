//! `audit`: past decisions from the audit log (time, source, ticket, email, LTV, tags, outcome), as a table or JSON, without SQL.

use std::time::Duration;

use serde::Serialize;

use super::Format;
use crate::clock::Millis;
use crate::config::Settings;
use crate::domain::{CustomerEmail, TicketId};
use crate::state::{AuditFilter, AuditRow, StateStore};

pub(super) struct Args {
    pub ticket: Option<String>,
    pub email: Option<String>,
    pub since: Option<Duration>,
    pub limit: i64,
    pub format: Format,
}

/// One decision, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct Decision {
    time: String,
    source: String,
    ticket: String,
    email: Option<String>,
    ltv: Option<String>,
    orders: Option<i64>,
    disputes: Option<i64>,
    tags_decided: Vec<String>,
    tags_written: Vec<String>,
    outcome: String,
    detail: Option<String>,
    attempts: i64,
}

impl From<AuditRow> for Decision {
    fn from(r: AuditRow) -> Decision {
        Decision {
            time: r.created_at.to_rfc3339(),
            source: r.source.to_string(),
            ticket: r.ticket_id.to_string(),
            email: r.record.email,
            ltv: r.record.ltv,
            orders: r.record.orders,
            disputes: r.record.disputes,
            tags_decided: r.record.tags_decided,
            tags_written: r.record.tags_written,
            outcome: r.record.outcome.to_string(),
            detail: r.record.detail,
            attempts: r.attempts,
        }
    }
}

pub(super) async fn audit(s: Settings, args: Args) -> anyhow::Result<()> {
    if args.limit < 1 {
        anyhow::bail!("--limit: must be at least 1");
    }
    let filter = AuditFilter {
        ticket: args
            .ticket
            .as_deref()
            .map(TicketId::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--ticket: {e}"))?,
        email: args
            .email
            .as_deref()
            .map(CustomerEmail::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--email: {e}"))?
            .map(|e| e.to_string()),
        since: args.since.map(|d| Millis::now() - d),
        limit: Some(args.limit),
    };
    let store = StateStore::connect_lazy(&s.state)?;
    store
        .check_ready()
        .await
        .map_err(|e| anyhow::anyhow!("state DB: {e}"))?;
    let rows: Vec<Decision> = store
        .audit_filtered(&filter)
        .await?
        .into_iter()
        .map(Decision::from)
        .collect();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Text if rows.is_empty() => println!("no decisions match"),
        Format::Text => {
            println!(
                "{:<20} {:<8} {:>10}  {:<28} {:>10} {:>6} {:>8}  {:<20} {:<20} {:<16} {:>8}",
                "time",
                "source",
                "ticket",
                "email",
                "ltv",
                "orders",
                "disputes",
                "tags decided",
                "tags written",
                "outcome",
                "attempts"
            );
            for d in rows {
                println!(
                    "{:<20} {:<8} {:>10}  {:<28} {:>10} {:>6} {:>8}  {:<20} {:<20} {:<16} {:>8}",
                    d.time.get(..19).unwrap_or(&d.time).replace('T', " "),
                    d.source,
                    d.ticket,
                    d.email.unwrap_or_else(|| "-".into()),
                    d.ltv.unwrap_or_else(|| "-".into()),
                    d.orders
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    d.disputes
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    list(&d.tags_decided),
                    list(&d.tags_written),
                    d.outcome,
                    d.attempts
                );
            }
        }
    }
    Ok(())
}

fn list(tags: &[String]) -> String {
    if tags.is_empty() {
        "-".into()
    } else {
        tags.join(",")
    }
}
