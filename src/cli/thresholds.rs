//! `thresholds`: every customer counted into the tags the policy gives them, the LTV distribution, recent tickets, a candidate policy beside the current one, and a plot.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::Format;
use crate::clock::Millis;
use crate::config::{load_policy, Settings};
use crate::orders::CustomerScan;
use crate::state::{AuditFilter, StateStore};
use crate::thresholds::{plot, report, RecentTicket, Tally};

pub(super) struct Args {
    pub candidate: Option<PathBuf>,
    pub since: Duration,
    pub format: Format,
    pub plot: Option<PathBuf>,
}

pub(super) async fn thresholds(s: Settings, args: Args) -> anyhow::Result<()> {
    let candidate = args.candidate.as_deref().map(load_policy).transpose()?;
    let scan = CustomerScan::connect_lazy(&s.orders_options(), &s.orders.customers_query)?;
    let mut tally = Tally::new(&s.policy, candidate.as_ref());
    scan.for_each(&mut |stats| tally.add(&stats)).await?;
    let since_text = humantime::format_duration(args.since).to_string();
    let recent = recent_tickets(&s, args.since).await;
    let recent = match recent {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warning: recent tickets not counted: {e:#}");
            Vec::new()
        }
    };
    let (figures, ltvs) = tally.finish(&since_text, &recent);
    if let Some(path) = &args.plot {
        plot::write(path, &ltvs, candidate.as_ref().unwrap_or(&s.policy))?;
        eprintln!("plot written to {}", path.display());
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&figures)?),
        Format::Text => print!("{}", report::text(&figures)),
    }
    Ok(())
}

/// The audit rows of the last `since` that recorded the customer's numbers.
async fn recent_tickets(s: &Settings, since: Duration) -> anyhow::Result<Vec<RecentTicket>> {
    let store = StateStore::connect_lazy(&s.state)?;
    let filter = AuditFilter {
        since: Some(Millis::now() - since),
        ..AuditFilter::default()
    };
    let rows = store
        .audit_filtered(&filter)
        .await
        .context("state DB: cannot read the audit log")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let ltv = r.record.ltv.as_deref()?.parse().ok()?;
            Some(RecentTicket {
                stats: crate::domain::CustomerStats {
                    ltv,
                    orders: r.record.orders.unwrap_or(0),
                    disputes: r.record.disputes.unwrap_or(0),
                    ..Default::default()
                },
                tags_decided: r.record.tags_decided,
            })
        })
        .collect())
}
