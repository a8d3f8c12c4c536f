//! `ltv-tagger backfill`: queue the tickets that were already open when the service was installed.
//!
//! The listing (`zendesk.rs`, `gorgias.rs`) goes through the helpdesk's own [`ApiClient`] (the
//! account's shared budget) after a token of the backfill's own bucket, which refills at
//! `backfill.budget_share` × the account's rate; each ticket queued takes one more token, so
//! the backfill's calls and the writes it causes stay within that share and live tickets keep
//! flowing. Each ticket is committed through the inbox ([`StateStore::enqueue`], dedupe key
//! `backfill:{ticket}`) with its current tags, so an already tagged ticket costs no write. The
//! cursor is saved after each page (`cursor.rs`): a rerun with the same arguments resumes.

pub mod cursor;
mod gorgias;
mod zendesk;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use crate::clock::Millis;
use crate::config::Settings;
use crate::domain::{CustomerEmail, Requester, Source, TicketId};
use crate::helpdesk::{ApiClient, GorgiasClient, HelpdeskError, ZendeskClient};
use crate::metrics::Metrics;
use crate::orders::OrderDb;
use crate::rate_budget::RateBudget;
use crate::state::{Enqueued, NewEvent, StateStore};

/// What `ltv-tagger backfill` was asked.
#[derive(Debug, Clone)]
pub struct BackfillArgs {
    pub source: Source,
    /// Only tickets created this long ago or later.
    pub since: Option<Duration>,
    /// Only tickets in these states (all when empty).
    pub statuses: Vec<String>,
    /// List and decide, write nothing.
    pub dry_run: bool,
}

impl BackfillArgs {
    /// The listing's name in `backfill_cursor`: the same arguments name the same listing.
    pub fn listing(&self) -> String {
        let since = self
            .since
            .map(|d| humantime::format_duration(d).to_string())
            .unwrap_or_else(|| "all".into());
        format!("status={} since={since}", self.statuses.join(","))
    }
}

/// One listed ticket.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub email: Option<String>,
    pub tags: Vec<String>,
}

/// One page of a listing and the cursor of the next (`None`: the last page).
#[derive(Debug, Clone)]
pub struct Page {
    pub tickets: Vec<Listed>,
    pub next: Option<String>,
}

/// Listing calls: a token of the backfill's share first, then the account's own budget.
pub struct Calls<'a> {
    api: &'a ApiClient,
    share: &'a RateBudget,
}

impl Calls<'_> {
    async fn get(&self, path: &str) -> Result<Value, HelpdeskError> {
        take(self.share).await?;
        self.api.send(Method::GET, path, None).await
    }
}

async fn take(share: &RateBudget) -> Result<(), HelpdeskError> {
    share
        .acquire()
        .await
        .map_err(|e| HelpdeskError::Unavailable(format!("backfill budget: state DB: {e}")))
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub listed: u64,
    /// New jobs (queued or folded into a waiting one).
    pub queued: u64,
    /// Tickets queued by an earlier run (dedupe).
    pub already_queued: u64,
    /// Tickets whose requester has no usable email.
    pub no_email: u64,
    /// Dry run: tickets that would get each tag they lack.
    pub would_tag: BTreeMap<String, u64>,
    /// Dry run: tickets that would get no new tag.
    pub nothing_to_write: u64,
    /// The listing had finished before this run: nothing was listed.
    pub was_finished: bool,
    /// This run continued from a saved cursor.
    pub resumed: bool,
}

/// Told once at the start and after every page.
pub trait Progress {
    /// `total`: the tickets the listing holds, when the helpdesk says; `done_before`: queued by
    /// earlier runs of the same listing.
    fn start(&mut self, total: Option<u64>, done_before: u64);
    fn page(&mut self, report: &Report);
}

/// Lists, then queues (or, dry, decides) every ticket.
pub async fn run(
    settings: &Settings,
    args: &BackfillArgs,
    progress: &mut dyn Progress,
) -> anyhow::Result<Report> {
    let store = StateStore::connect_lazy(&settings.state)?;
    store
        .check_ready()
        .await
        .map_err(|e| anyhow::anyhow!("state DB: {e}"))?;
    let metrics = Metrics::new()?;
    let share = settings.backfill.budget_share;
    let max_retry_after = settings.worker.max_retry_after;
    let (zendesk, gorgias, budget) = match args.source {
        Source::Zendesk => {
            let z = settings
                .zendesk
                .as_ref()
                .context("zendesk is not configured (zendesk.subdomain or api_base_url)")?;
            let rpm = (f64::from(z.requests_per_minute) * share).floor().max(1.0) as u32;
            let budget = RateBudget::zendesk(
                store.clone(),
                format!("backfill:zendesk:{}", z.base_url),
                rpm,
            );
            let client = ZendeskClient::new(z, store.clone(), metrics.clone(), max_retry_after)?;
            (Some(client), None, budget)
        }
        Source::Gorgias => {
            let g = settings
                .gorgias
                .as_ref()
                .context("gorgias is not configured (gorgias.domain or api_base_url)")?;
            let requests = (f64::from(g.requests_per_window) * share).floor().max(1.0) as u32;
            let budget = RateBudget::gorgias(
                store.clone(),
                format!("backfill:gorgias:{}", g.base_url),
                requests,
                g.window,
            );
            let client = GorgiasClient::new(g, store.clone(), metrics.clone(), max_retry_after)?;
            (None, Some(client), budget)
        }
    };
    let api = match (&zendesk, &gorgias) {
        (Some(z), _) => z.api(),
        (_, Some(g)) => g.api(),
        _ => anyhow::bail!("no helpdesk client"),
    };
    let calls = Calls {
        api,
        share: &budget,
    };
    let orders = if args.dry_run {
        Some(OrderDb::connect_lazy(&settings.orders_options())?)
    } else {
        None
    };
    let now = Millis::now();
    let created_after = args.since.map(|d| now - d);
    let listing = args.listing();
    let mut report = Report::default();
    // A dry run writes nothing, not even a cursor: it starts from the first page.
    let (mut cursor, created_after, mut queued_total) = if args.dry_run {
        (None, created_after, 0)
    } else {
        let saved =
            cursor::load_or_start(&store, args.source, &listing, created_after, now).await?;
        if saved.finished_at.is_some() {
            report.was_finished = true;
            return Ok(report);
        }
        report.resumed = saved.cursor.is_some();
        (saved.cursor, saved.created_after, saved.queued)
    };
    let query = zendesk::query(&args.statuses, created_after);
    let total = match args.source {
        // Only for the ETA: a failed count does not stop the backfill.
        Source::Zendesk => zendesk::count(&calls, &query).await.ok().flatten(),
        Source::Gorgias => None,
    };
    progress.start(total, u64::try_from(queued_total).unwrap_or(0));
    loop {
        let page = fetch_page(&calls, args, &query, created_after, cursor.as_deref())
            .await
            .with_context(|| {
                format!(
                    "listing {} tickets stopped; run the same command again to resume",
                    args.source
                )
            })?;
        for t in &page.tickets {
            report.listed += 1;
            let email = t
                .email
                .as_deref()
                .and_then(|e| CustomerEmail::parse(e).ok());
            if email.is_none() {
                report.no_email += 1;
            }
            match &orders {
                Some(orders) => {
                    dry_decide(
                        settings,
                        orders,
                        args.source,
                        t,
                        email.as_ref(),
                        &mut report,
                    )
                    .await?
                }
                None => {
                    let Ok(ticket_id) = TicketId::parse(&t.id) else {
                        continue;
                    };
                    take(&budget).await?;
                    let ev = NewEvent {
                        source: args.source,
                        ticket_id,
                        event_type: "backfill".into(),
                        requester: email.map(Requester::Email),
                        ticket_tags: t.tags.clone(),
                        dedupe_key: format!("backfill:{}", t.id),
                        body: serde_json::json!({ "backfill": t.id }).to_string(),
                        // No stamp: a backfilled ticket's write is a plain (not a safe) update.
                        ticket_updated_at: None,
                    };
                    match store.enqueue(&ev, Millis::now()).await? {
                        Enqueued::Duplicate => report.already_queued += 1,
                        Enqueued::Queued(_) | Enqueued::Coalesced(_) => {
                            report.queued += 1;
                            queued_total += 1;
                        }
                    }
                }
            }
        }
        if !args.dry_run {
            cursor::save(
                &store,
                args.source,
                &listing,
                page.next.as_deref(),
                queued_total,
                page.next.is_none(),
                Millis::now(),
            )
            .await?;
        }
        progress.page(&report);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(report)
}

/// Pauses a 429 or `Retry-After` asks for are waited out this many times per page; other
/// failures stop the run (a rerun resumes at this page).
const PAUSES_PER_PAGE: u32 = 10;

/// One page, waiting out the helpdesk's pauses (the account's budget is paused by the same
/// answer, so live writes wait too).
async fn fetch_page(
    calls: &Calls<'_>,
    args: &BackfillArgs,
    query: &str,
    created_after: Option<Millis>,
    cursor: Option<&str>,
) -> Result<Page, HelpdeskError> {
    let mut pauses = 0;
    loop {
        let page = match args.source {
            Source::Zendesk => zendesk::page(calls, query, cursor).await,
            Source::Gorgias => gorgias::page(calls, &args.statuses, created_after, cursor).await,
        };
        match page {
            Err(
                HelpdeskError::RateLimited { retry_after } | HelpdeskError::Paused { retry_after },
            ) if pauses < PAUSES_PER_PAGE => {
                pauses += 1;
                tokio::time::sleep(retry_after.max(Duration::from_millis(100))).await;
            }
            other => return other,
        }
    }
}

/// Dry run: the same lookup and [`crate::policy::Policy::decide`] as the worker, counted.
async fn dry_decide(
    settings: &Settings,
    orders: &OrderDb,
    source: Source,
    t: &Listed,
    email: Option<&CustomerEmail>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(email) = email else {
        report.nothing_to_write += 1;
        return Ok(());
    };
    let stats = orders
        .lookup(email.as_str())
        .await
        .with_context(|| format!("order DB lookup for ticket {}", t.id))?;
    let tags = stats
        .map(|s| settings.policy.decide(&s))
        .unwrap_or_default();
    let missing: Vec<_> = tags
        .iter()
        .filter(|tag| !t.tags.iter().any(|have| tag.is_on(have, source)))
        .collect();
    if missing.is_empty() {
        report.nothing_to_write += 1;
    }
    for tag in missing {
        *report
            .would_tag
            .entry(tag.for_vendor(source).to_string())
            .or_default() += 1;
    }
    Ok(())
}

/// `path?k=v&…`, each value percent-encoded.
pub(crate) fn path_with_query(path: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

/// A numeric or string id as text.
pub(crate) fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}
