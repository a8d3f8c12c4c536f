//! Zendesk safe updates: a ticket's `updated_at` that changes on each write, 409 on a write whose
//! `updated_stamp` is stale, and Show Ticket (`GET /api/v2/tickets/{id}`) to read a fresh one.
//!
//! Opt-in per ticket: a ticket's stamp is modelled once a test sets it
//! ([`FakeHelpdesk::set_ticket_updated_at`]); an unstamped ticket accepts any stamp.

use actix_web::HttpRequest;
use serde_json::{json, Value};

use super::{
    check_auth, error_body, not_found, Answer, BodyProblem, FakeHelpdesk, Helpdesk, Shared, State,
    Ticket,
};

/// A ticket's `updated_at` and the concurrent changes a test scheduled.
#[derive(Clone, Debug, Default)]
pub(super) struct TicketStamp {
    updated_at: Option<String>,
    /// Changes the ticket saw, for the next stamp.
    seq: u32,
    /// The next writes each meet an agent's edit first (this tag added, the stamp moved on).
    pending_changes: u32,
    change_tag: String,
    /// Safe updates accepted (their stamp was current).
    safe_writes: usize,
}

impl TicketStamp {
    /// After any change: a new `updated_at` (only for a ticket whose stamp is modelled).
    fn advance(&mut self) {
        if self.updated_at.is_some() {
            self.seq += 1;
            let n = self.seq;
            self.updated_at = Some(format!(
                "2030-01-01T{:02}:{:02}:{:02}Z",
                (n / 3600) % 24,
                (n / 60) % 60,
                n % 60
            ));
        }
    }
}

/// `safe_update` as Zendesk takes it: `true` or `"true"`.
fn is_safe(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || v.and_then(Value::as_str) == Some("true")
}

/// Before a Zendesk write: any scheduled concurrent change happens first; then a safe update
/// whose `updated_stamp` is not the ticket's `updated_at` is a 409 and changes nothing (400 for
/// `safe_update` without a stamp). The keys are in the body (Add Tags) or in its `inside` object
/// (`ticket` for Update Ticket).
pub(super) fn check(
    ticket: &mut Ticket,
    body: Result<&[u8], &BodyProblem>,
    inside: Option<&str>,
) -> Result<(), Answer> {
    let value: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let value = match inside {
        Some(key) => value.get(key).cloned().unwrap_or(Value::Null),
        None => value,
    };
    let empty = serde_json::Map::new();
    let object = value.as_object().unwrap_or(&empty);
    let stamp = &mut ticket.stamp;
    if stamp.pending_changes > 0 {
        stamp.pending_changes -= 1;
        ticket.tags.insert(stamp.change_tag.clone());
        stamp.advance();
    }
    if !is_safe(object.get("safe_update")) {
        return Ok(());
    }
    let Some(sent) = object.get("updated_stamp").and_then(Value::as_str) else {
        return Err(Answer::new(
            400,
            error_body(
                Helpdesk::Zendesk,
                "InvalidValue",
                "safe_update needs updated_stamp",
            ),
        ));
    };
    match &stamp.updated_at {
        Some(now) if now != sent => Err(Answer::new(
            409,
            json!({
                "error": "UpdateConflict",
                "description": format!("Ticket was updated at {now}, after updated_stamp {sent}"),
            }),
        )),
        _ => {
            stamp.safe_writes += 1;
            Ok(())
        }
    }
}

/// After a Zendesk write that changed the ticket.
pub(super) fn written(ticket: &mut Ticket) {
    ticket.stamp.advance();
}

/// The keys a safe update adds to a write body.
pub(super) const KEYS: [&str; 2] = ["safe_update", "updated_stamp"];

/// `GET /api/v2/tickets/{id}` → `{"ticket": {"id", "tags", "updated_at"}}`; `None` for every
/// other route.
pub(super) fn show_ticket(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
) -> Option<Answer> {
    if helpdesk != Helpdesk::Zendesk || req.method().as_str() != "GET" {
        return None;
    }
    let rest = req.path().strip_prefix("/api/v2/tickets/")?;
    let id = rest.strip_suffix(".json").unwrap_or(rest);
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Err(why) = check_auth(shared, helpdesk, req.headers()) {
        let who = format!("{helpdesk:?} GET {}", req.path());
        state
            .violations
            .push(format!("{who}: authentication failed: {why}"));
        return Some(Answer::new(
            401,
            json!({ "error": "Couldn't authenticate you" }),
        ));
    }
    if let Some(answer) = limited_or_failed(state, helpdesk) {
        return Some(answer);
    }
    let ticket = match state.tickets.get(&(helpdesk, id.to_owned())) {
        Some(t) if !t.deleted => t,
        _ => return Some(not_found(helpdesk)),
    };
    Some(Answer::new(
        200,
        json!({ "ticket": {
            "id": id.parse::<u64>().unwrap_or(0),
            "tags": ticket.tags,
            "updated_at": ticket.stamp.updated_at,
        }}),
    ))
}

/// The rate limit's 429 or an injected failure, as for every other route.
fn limited_or_failed(state: &mut State, helpdesk: Helpdesk) -> Option<Answer> {
    let now = std::time::Instant::now();
    if let Some(bucket) = state.bucket_mut(helpdesk) {
        if let Err(retry_after) = bucket.try_take(now) {
            state.rate_limited += 1;
            let mut answer = Answer::new(
                429,
                error_body(helpdesk, "APIRateLimitExceeded", "Too many requests"),
            );
            answer.retry_after = Some(retry_after);
            return Some(answer);
        }
    }
    let (status, retry_after) = state.injected_failure(now)?;
    let mut answer = Answer::new(
        status,
        error_body(helpdesk, "InjectedFailure", "Injected failure"),
    );
    answer.retry_after = retry_after;
    Some(answer)
}

impl FakeHelpdesk {
    /// Models the ticket's `updated_at` from now on: `stamp` now, a new one after each write.
    pub fn set_ticket_updated_at(&self, helpdesk: Helpdesk, ticket: &str, stamp: &str) {
        let mut state = self.shared.lock();
        state.ticket_mut(helpdesk, ticket).stamp.updated_at = Some(stamp.to_owned());
    }

    /// The ticket's `updated_at` (`None` when not modelled).
    pub fn ticket_updated_at(&self, helpdesk: Helpdesk, ticket: &str) -> Option<String> {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .and_then(|t| t.stamp.updated_at.clone())
    }

    /// How many safe updates (`safe_update` with the current `updated_stamp`) the ticket accepted.
    pub fn safe_writes(&self, helpdesk: Helpdesk, ticket: &str) -> usize {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .map_or(0, |t| t.stamp.safe_writes)
    }

    /// An agent edits the ticket now: `tag` added, `updated_at` moves on.
    pub fn change_ticket_concurrently(&self, helpdesk: Helpdesk, ticket: &str, tag: &str) {
        let mut state = self.shared.lock();
        let t = state.ticket_mut(helpdesk, ticket);
        t.tags.insert(tag.to_owned());
        t.stamp.advance();
    }

    /// Each of the next `n` writes to the ticket meets an agent's edit first (`tag` added,
    /// `updated_at` moved on), as if the agent always saved just before the service.
    pub fn change_before_each_write(&self, helpdesk: Helpdesk, ticket: &str, n: u32, tag: &str) {
        let mut state = self.shared.lock();
        let t = state.ticket_mut(helpdesk, ticket);
        t.stamp.pending_changes = n;
        t.stamp.change_tag = tag.to_owned();
    }
}
