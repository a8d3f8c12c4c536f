//! Ticket listings for `ltv-tagger backfill`: Zendesk's search count and export
//! (`GET /api/v2/search/export?query=…&filter[type]=ticket&page[size]=…&page[after]=…`, answering
//! `results`, `meta.has_more`, `meta.after_cursor`, `links.next`) with `GET
//! /api/v2/users/show_many?ids=…`, and Gorgias's `GET /api/tickets?limit=…&cursor=…` (answering
//! `data`, `meta.next_cursor`). Checks auth, verb, the required query parameters and that every
//! cursor is one this fake handed out; a chosen page can be made to fail.

use std::collections::HashMap;

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{error_body, gate, Answer, FakeHelpdesk, Helpdesk, Shared, State};

/// Zendesk's search export allows pages of up to 1000; Gorgias's list up to 100.
const ZENDESK_MAX_PAGE: usize = 1000;
const GORGIAS_MAX_PAGE: usize = 100;
/// `show_many` takes at most 100 ids.
const SHOW_MANY_MAX: usize = 100;

/// The listed tickets and the listing's controls.
#[derive(Default)]
pub(super) struct Listing {
    tickets: Vec<ListedTicket>,
    /// Listing page calls answered so far.
    pages_served: usize,
    /// The page call with this number (1-based, counted by `pages_served`) answers 503.
    fail_page: Option<usize>,
}

struct ListedTicket {
    helpdesk: Helpdesk,
    id: u64,
    status: String,
    requester_id: String,
    created_at: DateTime<Utc>,
}

impl FakeHelpdesk {
    /// A ticket the listings show, created `age` ago; its requester is a user (Zendesk) or
    /// customer (Gorgias) added with `add_zendesk_user` / `add_gorgias_customer`.
    pub fn add_listed_ticket(
        &self,
        helpdesk: Helpdesk,
        id: u64,
        status: &str,
        requester_id: &str,
        age: std::time::Duration,
    ) {
        let created_at = Utc::now() - chrono::Duration::from_std(age).unwrap_or_default();
        let mut state = self.shared.lock();
        state.ticket_mut(helpdesk, &id.to_string());
        state.listing.tickets.push(ListedTicket {
            helpdesk,
            id,
            status: status.to_owned(),
            requester_id: requester_id.to_owned(),
            created_at,
        });
        state.listing.tickets.sort_by_key(|t| t.id);
    }

    /// The `n`-th listing page call from now (1 = the next) answers 503 once.
    pub fn fail_listing_page(&self, n: usize) {
        let mut state = self.shared.lock();
        let at = state.listing.pages_served + n;
        state.listing.fail_page = Some(at);
    }

    /// Listing page calls answered so far (failed ones included).
    pub fn listing_pages_served(&self) -> usize {
        self.shared.lock().listing.pages_served
    }
}

#[derive(Clone, Copy)]
enum Route {
    ZendeskCount,
    ZendeskExport,
    ZendeskShowMany,
    GorgiasTickets,
}

fn route(helpdesk: Helpdesk, path: &str) -> Option<Route> {
    match (helpdesk, path.trim_end_matches(".json")) {
        (Helpdesk::Zendesk, "/api/v2/search/count") => Some(Route::ZendeskCount),
        (Helpdesk::Zendesk, "/api/v2/search/export") => Some(Route::ZendeskExport),
        (Helpdesk::Zendesk, "/api/v2/users/show_many") => Some(Route::ZendeskShowMany),
        (Helpdesk::Gorgias, "/api/tickets") => Some(Route::GorgiasTickets),
        _ => None,
    }
}

/// The answer for the routes of this file; `None` for every other route.
pub(super) fn answer(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
) -> Option<Answer> {
    let which = route(helpdesk, req.path())?;
    let bad = |state: &mut State, status: u16, why: String| {
        state.violations.push(format!(
            "{helpdesk:?} {} {}: {why}",
            req.method(),
            req.path()
        ));
        Answer::new(status, error_body(helpdesk, "InvalidValue", &why))
    };
    if req.method().as_str() != "GET" {
        return Some(bad(
            state,
            405,
            format!("method {} not allowed", req.method()),
        ));
    }
    if let Some(answer) = gate(shared, state, req, helpdesk) {
        return Some(answer);
    }
    let params: HashMap<String, String> =
        match web::Query::<HashMap<String, String>>::from_query(req.query_string()) {
            Ok(q) => q.into_inner(),
            Err(e) => return Some(bad(state, 400, format!("query string: {e}"))),
        };
    if matches!(which, Route::ZendeskExport | Route::GorgiasTickets) {
        state.listing.pages_served += 1;
        if state.listing.fail_page == Some(state.listing.pages_served) {
            state.listing.fail_page = None;
            return Some(Answer::new(
                503,
                error_body(helpdesk, "InjectedFailure", "listing page failed"),
            ));
        }
    }
    Some(match which {
        Route::ZendeskCount => {
            zendesk_count(state, &params).unwrap_or_else(|why| bad(state, 400, why))
        }
        Route::ZendeskExport => {
            zendesk_export(state, &params).unwrap_or_else(|why| bad(state, 400, why))
        }
        Route::ZendeskShowMany => {
            show_many(state, &params).unwrap_or_else(|why| bad(state, 400, why))
        }
        Route::GorgiasTickets => {
            gorgias_tickets(state, &params).unwrap_or_else(|why| bad(state, 400, why))
        }
    })
}

/// `page[size]` / `limit`: required to be a number in `1..=max`.
fn page_size(params: &HashMap<String, String>, key: &str, max: usize) -> Result<usize, String> {
    let size = match params.get(key) {
        None => return Ok(max.min(100)),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("{key}={v:?} is not a number"))?,
    };
    if size == 0 || size > max {
        return Err(format!("{key}={size}: must be 1..={max}"));
    }
    Ok(size)
}

/// The position a cursor this fake handed out points at (`c{index}`).
fn cursor_at(params: &HashMap<String, String>, key: &str) -> Result<usize, String> {
    match params.get(key) {
        None => Ok(0),
        Some(c) => c
            .strip_prefix('c')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{key}={c:?} is not a cursor this listing handed out")),
    }
}

/// The Zendesk tickets a search query matches, in id order.
///
/// `type:ticket status:open status:pending created>2026-11-01T00:00:00Z`: the status terms are
/// alternatives, `created>` a lower bound.
fn zendesk_matching<'a>(state: &'a State, query: &str) -> Result<Vec<&'a ListedTicket>, String> {
    let mut statuses = Vec::new();
    let mut created_after = None;
    let mut typed = false;
    for term in query.split_whitespace() {
        if term == "type:ticket" {
            typed = true;
        } else if let Some(s) = term.strip_prefix("status:") {
            statuses.push(s.to_owned());
        } else if let Some(t) = term.strip_prefix("created>") {
            let t = DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("created>{t}: not a date-time: {e}"))?;
            created_after = Some(t.with_timezone(&Utc));
        } else {
            return Err(format!(
                "query term {term:?} is not understood by this fake"
            ));
        }
    }
    if !typed {
        return Err("query must hold type:ticket".into());
    }
    Ok(state
        .listing
        .tickets
        .iter()
        .filter(|t| t.helpdesk == Helpdesk::Zendesk)
        .filter(|t| statuses.is_empty() || statuses.contains(&t.status))
        .filter(|t| created_after.map_or(true, |after| t.created_at > after))
        .collect())
}

fn zendesk_count(state: &State, params: &HashMap<String, String>) -> Result<Answer, String> {
    let query = params.get("query").ok_or("query is required")?;
    let n = zendesk_matching(state, query)?.len();
    Ok(Answer::new(200, json!({ "count": n })))
}

fn zendesk_export(state: &State, params: &HashMap<String, String>) -> Result<Answer, String> {
    let query = params.get("query").ok_or("query is required")?;
    if params.get("filter[type]").map(String::as_str) != Some("ticket") {
        return Err("filter[type]=ticket is required".into());
    }
    let size = page_size(params, "page[size]", ZENDESK_MAX_PAGE)?;
    let from = cursor_at(params, "page[after]")?;
    let matching = zendesk_matching(state, query)?;
    let page: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(size)
        .map(|t| {
            json!({
                "id": t.id,
                "url": format!("https://fake.zendesk.com/api/v2/tickets/{}.json", t.id),
                "result_type": "ticket",
                "status": t.status,
                "requester_id": t.requester_id.parse::<u64>().map_or_else(|_| json!(t.requester_id), |n| json!(n)),
                "tags": tags_of(state, Helpdesk::Zendesk, t.id),
                "created_at": t.created_at.to_rfc3339(),
            })
        })
        .collect();
    let end = from + page.len();
    let has_more = end < matching.len();
    let after = has_more.then(|| format!("c{end}"));
    Ok(Answer::new(
        200,
        json!({
            "results": page,
            "meta": { "has_more": has_more, "after_cursor": after, "before_cursor": null },
            "links": {
                "prev": null,
                "next": after.as_ref().map(|c| format!("/api/v2/search/export?page[after]={c}")),
            },
        }),
    ))
}

fn show_many(state: &State, params: &HashMap<String, String>) -> Result<Answer, String> {
    let ids: Vec<&str> = params
        .get("ids")
        .ok_or("ids is required")?
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > SHOW_MANY_MAX {
        return Err(format!("ids: 1 to {SHOW_MANY_MAX} ids, got {}", ids.len()));
    }
    let users: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            let email = state.zendesk_users.get(*id)?;
            Some(json!({ "id": id.parse::<u64>().ok()?, "email": email }))
        })
        .collect();
    Ok(Answer::new(200, json!({ "users": users })))
}

fn gorgias_tickets(state: &State, params: &HashMap<String, String>) -> Result<Answer, String> {
    let size = page_size(params, "limit", GORGIAS_MAX_PAGE)?;
    let from = cursor_at(params, "cursor")?;
    let mut matching: Vec<&ListedTicket> = state
        .listing
        .tickets
        .iter()
        .filter(|t| t.helpdesk == Helpdesk::Gorgias)
        .collect();
    if params.get("order_by").map(String::as_str) == Some("created_datetime:desc") {
        matching.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    }
    let page: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(size)
        .map(|t| {
            let email = state.gorgias_customers.get(&t.requester_id);
            json!({
                "id": t.id,
                "status": t.status,
                "customer": { "id": t.requester_id.parse::<u64>().ok(), "email": email },
                "tags": tags_of(state, Helpdesk::Gorgias, t.id)
                    .iter()
                    .map(|name| json!({ "name": name }))
                    .collect::<Vec<_>>(),
                "created_datetime": t.created_at.to_rfc3339(),
            })
        })
        .collect();
    let end = from + page.len();
    let next = (end < matching.len()).then(|| format!("c{end}"));
    Ok(Answer::new(
        200,
        json!({
            "data": page,
            "meta": {
                "next_cursor": next,
                "prev_cursor": (from > 0).then(|| format!("c{}", from.saturating_sub(size))),
            },
        }),
    ))
}

fn tags_of(state: &State, helpdesk: Helpdesk, id: u64) -> Vec<String> {
    state
        .tickets
        .get(&(helpdesk, id.to_string()))
        .map(|t| t.tags.iter().cloned().collect())
        .unwrap_or_default()
}
