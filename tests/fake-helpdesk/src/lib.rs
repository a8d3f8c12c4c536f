//! An in-process fake of the Zendesk and Gorgias REST APIs, served on loopback, with the controls
//! tests need: rate buckets, injected failures and latency, request and violation recording,
//! counters.
//!
//! A dev-only crate, used by ltv-tagger's integration and fault tests and by its benchmark (the
//! `demo` subcommand has a small fake Zendesk of its own, without any of these controls). It
//! follows the vendors' documented contracts (see "Helpdesk facts" in the design brief) and
//! records every way a client breaks them, so a test can assert both what reached the helpdesk
//! and that nothing reached it the wrong way:
//!
//! * Zendesk: `PUT /api/v2/tickets/{id}/tags` with `{"tags":[…]}` adds tags and answers 200
//!   `{"tags":[…all…]}`; `GET /api/v2/users/{id}`; auth `Basic base64("{email}/token:{token}")`;
//!   token bucket of `limit` requests per minute with `X-Rate-Limit`/`X-Rate-Limit-Remaining`.
//! * Gorgias: `POST /api/tickets/{id}/tags` with `{"names":[…]}` adds tags and answers 201 with
//!   an empty body; `GET /api/customers/{id}`; auth `Basic base64("{email}:{key}")`; leaky bucket
//!   with `X-Gorgias-Account-Api-Call-Limit: used/capacity`.
//!
//! * Ticket listings for the backfill (Zendesk search export and count, `users/show_many`;
//!   Gorgias `GET /api/tickets` with cursors) are in `listing.rs`.
//!
//! * Removing tags (`DELETE …/tags` with the same body) is carried out and answers Zendesk 200
//!   with the tags left, Gorgias 204; Zendesk Update Ticket and Gorgias internal notes are in
//!   `ticket_writes.rs`.
//!
//! * Zendesk's other rate-limit headers (`ratelimit-remaining`, `zendesk-ratelimit-<endpoint>`),
//!   added to every answer or to one route's, are in `rate_headers.rs`.
//!
//! Both helpdesks share one base URL: Zendesk routes live under `/api/v2/`, Gorgias routes under
//! `/api/`. The verbs that replace tags (Zendesk `POST`, Gorgias `PUT`) are carried out, as the
//! real services would, and recorded as violations.
//!
//! Every answer goes through the same steps, in this order of precedence: route (404/405),
//! authentication (401), rate limit (429), injected failures ([`FakeHelpdesk::fail_for`],
//! [`FakeHelpdesk::fail_next`]), body shape (400), ticket state (404 deleted, 422 closed on
//! Zendesk), then the operation itself. Contract breaches are recorded as violations even when
//! an earlier step decided the status.

mod admin;
mod bulk;
mod listing;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use ltv_tagger::config::RawSettings;
use serde_json::{json, Value};

mod rate_headers;
mod safe_update;
mod ticket_writes;
pub use ticket_writes::Note;

/// Largest request body the fake reads; larger bodies answer 413 and count as a violation.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Slack for floating-point comparisons in the rate-limit buckets.
const EPSILON: f64 = 1e-9;

/// Status recorded for a request whose client went away before it was answered.
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// Which vendor API a request was addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Helpdesk {
    Zendesk,
    Gorgias,
}

/// Credentials the fake expects and the rate limits it enforces.
#[derive(Clone)]
pub struct FakeHelpdeskConfig {
    /// Zendesk API auth: `Basic base64("{zendesk_email}/token:{zendesk_token}")`.
    pub zendesk_email: String,
    pub zendesk_token: String,
    /// Gorgias API auth: `Basic base64("{gorgias_email}:{gorgias_key}")`.
    pub gorgias_email: String,
    pub gorgias_key: String,
    /// Zendesk token bucket: capacity `limit`, refilled at `limit / 60` tokens per second.
    /// `None` means no limit and no rate-limit headers.
    pub zendesk_limit_per_minute: Option<u32>,
    /// Gorgias leaky bucket: `(capacity, window)` holds `capacity` calls and drains `capacity`
    /// calls per `window` (the API-key default is 40 per 20 s). `None` means no limit.
    pub gorgias_limit: Option<(u32, Duration)>,
    /// A strict Zendesk token bucket instead: `(requests_per_minute, burst)` holds `burst`
    /// tokens and refills `requests_per_minute / 60` per second. Wins over
    /// `zendesk_limit_per_minute`. It answers 429 with `Retry-After` but sends no
    /// `X-Rate-Limit-Remaining` (a limiter that does not advertise its level), so the client's
    /// own pacing is what is tested.
    pub zendesk_strict_bucket: Option<(u32, u32)>,
}

impl Default for FakeHelpdeskConfig {
    fn default() -> Self {
        Self {
            zendesk_email: "agent@example.com".to_owned(),
            zendesk_token: "fake-zendesk-api-token".to_owned(),
            gorgias_email: "agent@example.com".to_owned(),
            gorgias_key: "fake-gorgias-api-key".to_owned(),
            zendesk_limit_per_minute: None,
            gorgias_limit: None,
            zendesk_strict_bucket: None,
        }
    }
}

impl fmt::Debug for FakeHelpdeskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeHelpdeskConfig")
            .field("zendesk_email", &self.zendesk_email)
            .field("zendesk_token", &"[redacted]")
            .field("gorgias_email", &self.gorgias_email)
            .field("gorgias_key", &"[redacted]")
            .field("zendesk_limit_per_minute", &self.zendesk_limit_per_minute)
            .field("gorgias_limit", &self.gorgias_limit)
            .field("zendesk_strict_bucket", &self.zendesk_strict_bucket)
            .finish()
    }
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub helpdesk: Helpdesk,
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The status answered ([`STATUS_CLIENT_CLOSED`] if the client left before the answer).
    pub status: u16,
    /// When the request arrived (before any latency set with [`FakeHelpdesk::set_latency`]).
    pub at: Instant,
}

/// Handle on a running fake. Clones share the same server and state; the server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct FakeHelpdesk {
    shared: Arc<Shared>,
    _server: Arc<StopOnDrop>,
    base_url: String,
}

impl fmt::Debug for FakeHelpdesk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeHelpdesk")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

struct StopOnDrop(ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.0.stop(false));
    }
}

impl FakeHelpdesk {
    /// Points `raw`'s Zendesk section at this fake, with the credentials it expects.
    pub fn serve_zendesk_for(
        &self,
        raw: &mut RawSettings,
        cfg: &FakeHelpdeskConfig,
        webhook_secret: &str,
    ) {
        raw.zendesk.api_base_url = self.base_url();
        raw.zendesk.email = cfg.zendesk_email.clone();
        raw.zendesk.api_token = cfg.zendesk_token.clone().into();
        raw.zendesk.webhook_secret = webhook_secret.to_string().into();
    }

    /// Points `raw`'s Gorgias section at this fake, with the credentials it expects.
    pub fn serve_gorgias_for(
        &self,
        raw: &mut RawSettings,
        cfg: &FakeHelpdeskConfig,
        webhook_token: &str,
    ) {
        raw.gorgias.api_base_url = self.base_url();
        raw.gorgias.email = cfg.gorgias_email.clone();
        raw.gorgias.api_key = cfg.gorgias_key.clone().into();
        raw.gorgias.webhook_token = webhook_token.to_string().into();
    }

    /// Binds 127.0.0.1 on a free port and serves the fake from the current tokio runtime.
    pub async fn start(cfg: FakeHelpdeskConfig) -> std::io::Result<FakeHelpdesk> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::new(cfg));
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        tokio::spawn(server);
        Ok(FakeHelpdesk {
            shared,
            _server: Arc::new(StopOnDrop(server_handle)),
            base_url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// `http://127.0.0.1:PORT`, the API base for both helpdesks.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Makes `GET /api/v2/users/{id}` answer this user. Ids must be numeric to be reachable.
    pub fn add_zendesk_user(&self, id: &str, email: &str) {
        self.shared
            .lock()
            .zendesk_users
            .insert(id.to_owned(), email.to_owned());
    }

    /// Makes `GET /api/customers/{id}` answer this customer. Ids must be numeric to be reachable.
    pub fn add_gorgias_customer(&self, id: &str, email: &str) {
        self.shared
            .lock()
            .gorgias_customers
            .insert(id.to_owned(), email.to_owned());
    }

    /// Replaces a ticket's tags without counting a write (tags that were there before the
    /// service looked). Creates the ticket if needed.
    pub fn set_ticket_tags(&self, helpdesk: Helpdesk, ticket: &str, tags: &[&str]) {
        let mut state = self.shared.lock();
        let t = state.ticket_mut(helpdesk, ticket);
        t.tags = tags.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Closes a ticket. Zendesk then rejects tag changes with 422; Gorgias still accepts them,
    /// as the real Gorgias does.
    pub fn close_ticket(&self, helpdesk: Helpdesk, ticket: &str) {
        self.shared.lock().ticket_mut(helpdesk, ticket).closed = true;
    }

    /// Deletes a ticket: every call about it answers 404 from now on.
    pub fn delete_ticket(&self, helpdesk: Helpdesk, ticket: &str) {
        self.shared.lock().ticket_mut(helpdesk, ticket).deleted = true;
    }

    /// The next `n` authenticated, routed calls (either helpdesk) answer `status` without touching
    /// any state, with `Retry-After: retry_after_secs` when given. Replaces any earlier setting;
    /// `n = 0` clears it.
    pub fn fail_next(&self, n: u32, status: u16, retry_after_secs: Option<u64>) {
        self.shared.lock().fail_next = (n > 0).then_some(Injected {
            remaining: n,
            status,
            retry_after: retry_after_secs,
        });
    }

    /// Every authenticated, routed call answers `status` until `now + d` (an outage). A 429
    /// carries `Retry-After` with the seconds left (rounded up); other statuses carry none.
    pub fn fail_for(&self, d: Duration, status: u16) {
        self.shared.lock().outage = Some((Instant::now() + d, status));
    }

    /// Every call sleeps `d` before it is handled (to provoke client timeouts).
    pub fn set_latency(&self, d: Duration) {
        self.shared.lock().latency = d;
    }

    /// The ticket's current tags, sorted.
    pub fn tags(&self, helpdesk: Helpdesk, ticket: &str) -> Vec<String> {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .map(|t| t.tags.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Successful tag-writing calls for that ticket: the adding verb (Zendesk `PUT`, Gorgias
    /// `POST`) and also the replacing verb (Zendesk `POST`, Gorgias `PUT`, which is a violation
    /// too), so "written once" assertions hold whichever verb a client used.
    pub fn tag_writes(&self, helpdesk: Helpdesk, ticket: &str) -> usize {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .map_or(0, |t| t.writes)
    }

    /// Every request seen so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Contract breaches seen so far, one line each, secrets never included.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Panics, listing them, if any contract breach was seen.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(violations.is_empty(), "{violations:?}");
    }

    /// Every request so far as `"METHOD /path STATUS"`, in the order they were answered.
    pub fn calls(&self) -> Vec<String> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect()
    }

    /// Every request so far as `"METHOD /path"`, in the order they were answered.
    pub fn routes(&self) -> Vec<String> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// How many requests were answered with `status` (injected failures included).
    pub fn count_status(&self, status: u16) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.status == status)
            .count()
    }

    /// How many 429s the rate-limit buckets produced (injected 429s not included).
    pub fn rate_limited(&self) -> usize {
        self.shared.lock().rate_limited
    }

    /// The highest number of requests being handled at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// State

struct Shared {
    zendesk_credentials: String,
    gorgias_credentials: String,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    fn new(cfg: FakeHelpdeskConfig) -> Self {
        let now = Instant::now();
        let state = State {
            tickets: HashMap::new(),
            zendesk_users: HashMap::new(),
            gorgias_customers: HashMap::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            fail_next: None,
            outage: None,
            latency: Duration::ZERO,
            zendesk_bucket: cfg
                .zendesk_strict_bucket
                .map(|(per_minute, burst)| {
                    // Drains `burst` calls in the time `per_minute` refills that many tokens.
                    let window = 60.0 * f64::from(burst) / f64::from(per_minute.max(1));
                    Bucket::new(burst, Duration::from_secs_f64(window), now)
                })
                .or_else(|| {
                    cfg.zendesk_limit_per_minute
                        .map(|limit| Bucket::new(limit, Duration::from_secs(60), now))
                }),
            gorgias_bucket: cfg
                .gorgias_limit
                .map(|(capacity, window)| Bucket::new(capacity, window, now)),
            rate_limited: 0,
            admin: admin::Admin::default(),
            listing: listing::Listing::default(),
            bulk: bulk::Bulk::default(),
            zendesk_bucket_quiet: cfg.zendesk_strict_bucket.is_some(),
            extra_headers: rate_headers::ExtraHeaders::default(),
        };
        Self {
            zendesk_credentials: format!("{}/token:{}", cfg.zendesk_email, cfg.zendesk_token),
            gorgias_credentials: format!("{}:{}", cfg.gorgias_email, cfg.gorgias_key),
            state: Mutex::new(state),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// A panic while the lock is held (a failed assertion in a test thread) must not make every
    /// later call panic too: the state is still consistent, so take it back.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct State {
    tickets: HashMap<(Helpdesk, String), Ticket>,
    zendesk_users: HashMap<String, String>,
    gorgias_customers: HashMap<String, String>,
    requests: Vec<RecordedRequest>,
    violations: Vec<String>,
    fail_next: Option<Injected>,
    outage: Option<(Instant, u16)>,
    latency: Duration,
    zendesk_bucket: Option<Bucket>,
    gorgias_bucket: Option<Bucket>,
    rate_limited: usize,
    /// Webhooks, triggers and integrations (`admin.rs`).
    admin: admin::Admin,
    /// Ticket listings for the backfill (`listing.rs`).
    listing: listing::Listing,
    /// Zendesk bulk jobs (`bulk.rs`).
    bulk: bulk::Bulk,
    /// The Zendesk bucket is a strict one that sends no rate-limit headers.
    zendesk_bucket_quiet: bool,
    /// More rate-limit headers on Zendesk answers (`rate_headers.rs`).
    extra_headers: rate_headers::ExtraHeaders,
}

impl State {
    fn ticket_mut(&mut self, helpdesk: Helpdesk, id: &str) -> &mut Ticket {
        self.tickets.entry((helpdesk, id.to_owned())).or_default()
    }

    fn bucket_mut(&mut self, helpdesk: Helpdesk) -> Option<&mut Bucket> {
        match helpdesk {
            Helpdesk::Zendesk => self.zendesk_bucket.as_mut(),
            Helpdesk::Gorgias => self.gorgias_bucket.as_mut(),
        }
    }

    /// The status and `Retry-After` of an injected failure, if one applies to this call.
    fn injected_failure(&mut self, now: Instant) -> Option<(u16, Option<u64>)> {
        if let Some((until, status)) = self.outage {
            if now < until {
                let retry_after = (status == 429).then(|| ceil_secs(until - now));
                return Some((status, retry_after));
            }
            self.outage = None;
        }
        let injected = self.fail_next.as_mut()?;
        let answer = (injected.status, injected.retry_after);
        injected.remaining = injected.remaining.saturating_sub(1);
        if injected.remaining == 0 {
            self.fail_next = None;
        }
        Some(answer)
    }
}

#[derive(Default)]
struct Ticket {
    tags: BTreeSet<String>,
    fields: std::collections::BTreeMap<u64, Value>,
    notes: Vec<Note>,
    updates: usize,
    closed: bool,
    deleted: bool,
    writes: usize,
    /// `updated_at` and scheduled concurrent changes (`safe_update.rs`).
    stamp: safe_update::TicketStamp,
}

struct Injected {
    remaining: u32,
    status: u16,
    retry_after: Option<u64>,
}

/// A bucket that holds `capacity` calls and drains `capacity` calls per `window`.
///
/// The Zendesk token bucket (capacity `limit`, refill `limit / 60` per second) is the same
/// thing seen from the other side: tokens left = `capacity - level`.
#[derive(Clone, Debug)]
struct Bucket {
    capacity: f64,
    drain_per_sec: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: u32, window: Duration, now: Instant) -> Self {
        let window = window.max(Duration::from_nanos(1)).as_secs_f64();
        Self {
            capacity: f64::from(capacity),
            drain_per_sec: f64::from(capacity) / window,
            level: 0.0,
            last: now,
        }
    }

    fn drain(&mut self, now: Instant) {
        if now > self.last {
            let elapsed = (now - self.last).as_secs_f64();
            self.level = (self.level - elapsed * self.drain_per_sec).max(0.0);
            self.last = now;
        }
    }

    /// Takes room for one call, or says how many whole seconds until there is room.
    fn try_take(&mut self, now: Instant) -> Result<(), u64> {
        self.drain(now);
        if self.level + 1.0 <= self.capacity + EPSILON {
            self.level += 1.0;
            Ok(())
        } else {
            Err(self.retry_after_secs())
        }
    }

    fn retry_after_secs(&self) -> u64 {
        if self.drain_per_sec <= 0.0 {
            return 60;
        }
        let wait = (self.level + 1.0 - self.capacity).max(0.0) / self.drain_per_sec;
        // At least 1: a client told "0" would retry at once and be refused again.
        (wait - EPSILON).ceil().clamp(1.0, 86_400.0) as u64
    }

    /// Whole calls that fit now (Zendesk `X-Rate-Limit-Remaining`).
    fn remaining(&self) -> u64 {
        (self.capacity - self.level + EPSILON).floor().max(0.0) as u64
    }

    /// Calls in the bucket now, rounded up (Gorgias `used` in `used/capacity`).
    fn used(&self) -> u64 {
        (self.level - EPSILON).ceil().max(0.0) as u64
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Counts a request in flight and records it as abandoned if its future is dropped unanswered
/// (the client disconnected while the fake slept).
struct InFlight {
    shared: Arc<Shared>,
    helpdesk: Helpdesk,
    method: String,
    path: String,
    at: Instant,
    answered: bool,
}

impl InFlight {
    fn enter(shared: Arc<Shared>, helpdesk: Helpdesk, req: &HttpRequest, at: Instant) -> Self {
        let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared
            .max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        Self {
            shared,
            helpdesk,
            method: req.method().to_string(),
            path: req.path().to_owned(),
            at,
            answered: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            self.shared.lock().requests.push(RecordedRequest {
                helpdesk: self.helpdesk,
                method: std::mem::take(&mut self.method),
                path: std::mem::take(&mut self.path),
                status: STATUS_CLIENT_CLOSED,
                at: self.at,
            });
        }
    }
}

enum BodyProblem {
    TooLarge,
    Unreadable(String),
}

async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let at = Instant::now();
    let helpdesk = classify(&req);
    let mut in_flight = InFlight::enter(shared.clone().into_inner(), helpdesk, &req, at);

    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let body = match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(BodyProblem::Unreadable(e.to_string())),
        Err(_) => Err(BodyProblem::TooLarge),
    };

    let mut state = shared.lock();
    let answer = answer(&shared, &mut state, &req, helpdesk, body.as_deref());
    let mut response = answer.into_response(helpdesk, &mut state, Instant::now());
    if helpdesk == Helpdesk::Zendesk {
        rate_headers::add(&state.extra_headers, &req, &mut response);
    }
    state.requests.push(RecordedRequest {
        helpdesk,
        method: req.method().to_string(),
        path: req.path().to_owned(),
        status: response.status().as_u16(),
        at,
    });
    in_flight.answered = true;
    response
}

/// Zendesk lives under `/api/v2/`, Gorgias under the rest of `/api/`. A path outside both is
/// attributed by the shape of its credentials (`…/token:…` is Zendesk's).
fn classify(req: &HttpRequest) -> Helpdesk {
    let path = req.path();
    if path.starts_with("/api/v2/") {
        Helpdesk::Zendesk
    } else if path.starts_with("/api/") {
        Helpdesk::Gorgias
    } else if basic_credentials(req.headers()).is_ok_and(|c| c.contains("/token:")) {
        Helpdesk::Zendesk
    } else {
        Helpdesk::Gorgias
    }
}

/// The decoded `user:password` of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Result<String, &'static str> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or("missing Authorization header")?
        .to_str()
        .map_err(|_| "Authorization header is not visible ASCII")?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or("Authorization header is not `Basic <base64>`")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("Authorization scheme is not Basic");
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "Basic credentials are not valid base64")?;
    String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")
}

fn check_auth(shared: &Shared, helpdesk: Helpdesk, headers: &HeaderMap) -> Result<(), String> {
    let credentials = basic_credentials(headers).map_err(str::to_owned)?;
    let (expected, zendesk_shaped) = match helpdesk {
        Helpdesk::Zendesk => (&shared.zendesk_credentials, true),
        Helpdesk::Gorgias => (&shared.gorgias_credentials, false),
    };
    if credentials == *expected {
        return Ok(());
    }
    Err(match (zendesk_shaped, credentials.contains("/token:")) {
        (true, false) => "credentials are not in Zendesk's `{email}/token:{api_token}` form".into(),
        (false, true) => "Zendesk-style `/token:` credentials sent to Gorgias".into(),
        _ => "wrong email or API credential".into(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ReadTags,
    AddTags,
    ReplaceTags,
    RemoveTags,
    GetPerson,
}

/// What a path and method mean for this helpdesk, or why they mean nothing (status, reason).
fn route(helpdesk: Helpdesk, method: &Method, path: &str) -> Result<(Op, String), (u16, String)> {
    let (rest, person) = match helpdesk {
        Helpdesk::Zendesk => (path.strip_prefix("/api/v2/"), "users"),
        Helpdesk::Gorgias => (path.strip_prefix("/api/"), "customers"),
    };
    let unknown = || (404, format!("unknown route {path}"));
    let rest = rest.ok_or_else(unknown)?;
    let mut segments: Vec<&str> = rest.split('/').collect();
    if helpdesk == Helpdesk::Zendesk {
        // Zendesk accepts an optional `.json` suffix on every endpoint.
        if let Some(last) = segments.last_mut() {
            *last = last.strip_suffix(".json").unwrap_or(last);
        }
    }
    let (resource, id) = match segments.as_slice() {
        ["tickets", id, "tags"] => ("tags", *id),
        [p, id] if *p == person => ("person", *id),
        _ => return Err(unknown()),
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err((404, format!("id `{id}` in {path} is not a number")));
    }
    let op = match (helpdesk, resource, method.as_str()) {
        (_, "tags", "GET") => Op::ReadTags,
        (Helpdesk::Zendesk, "tags", "PUT") | (Helpdesk::Gorgias, "tags", "POST") => Op::AddTags,
        (Helpdesk::Zendesk, "tags", "POST") | (Helpdesk::Gorgias, "tags", "PUT") => Op::ReplaceTags,
        (_, "tags", "DELETE") => Op::RemoveTags,
        (_, "person", "GET") => Op::GetPerson,
        _ => return Err((405, format!("method {method} not allowed on {path}"))),
    };
    Ok((op, (*id).to_owned()))
}

/// The tags of a write body: `{"tags":[…]}` for Zendesk, `{"names":[…]}` for Gorgias, a
/// non-empty array of non-empty strings (without whitespace for Zendesk, where a space would
/// split the tag in two).
fn parse_tag_body(
    helpdesk: Helpdesk,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, String> {
    let field = match helpdesk {
        Helpdesk::Zendesk => "tags",
        Helpdesk::Gorgias => "names",
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(format!(
            "Content-Type is `{content_type}`, expected application/json"
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("body is not a JSON object")?;
    let list = object
        .get(field)
        .ok_or_else(|| format!("body has no `{field}` field"))?
        .as_array()
        .ok_or_else(|| format!("`{field}` is not an array"))?;
    if list.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    list.iter()
        .map(|item| {
            let tag = item
                .as_str()
                .ok_or_else(|| format!("`{field}` holds a non-string: {item}"))?;
            if tag.trim().is_empty() {
                return Err(format!("`{field}` holds an empty tag"));
            }
            if helpdesk == Helpdesk::Zendesk && tag.chars().any(char::is_whitespace) {
                return Err(format!("Zendesk tag `{tag}` contains whitespace"));
            }
            Ok(tag.to_owned())
        })
        .collect()
}

/// What to send back, before the headers every answer of that helpdesk carries.
struct Answer {
    status: u16,
    body: Option<Value>,
    retry_after: Option<u64>,
}

impl Answer {
    fn new(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            retry_after: None,
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            retry_after: None,
        }
    }

    fn into_response(self, helpdesk: Helpdesk, state: &mut State, now: Instant) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        let quiet = helpdesk == Helpdesk::Zendesk && state.zendesk_bucket_quiet;
        if let Some(bucket) = state.bucket_mut(helpdesk).filter(|_| !quiet) {
            bucket.drain(now);
            match helpdesk {
                Helpdesk::Zendesk => {
                    response.insert_header(("X-Rate-Limit", format!("{}", bucket.capacity)));
                    response
                        .insert_header(("X-Rate-Limit-Remaining", bucket.remaining().to_string()));
                }
                Helpdesk::Gorgias => {
                    response.insert_header((
                        "X-Gorgias-Account-Api-Call-Limit",
                        format!("{}/{}", bucket.used(), bucket.capacity),
                    ));
                }
            }
        }
        if let Some(secs) = self.retry_after {
            let name = match helpdesk {
                Helpdesk::Zendesk => "Retry-After",
                Helpdesk::Gorgias => "Retry-after",
            };
            response.insert_header((name, secs.to_string()));
        }
        match self.body {
            Some(body) => response.json(body),
            None => response.finish(),
        }
    }
}

fn error_body(helpdesk: Helpdesk, zendesk_error: &str, message: &str) -> Value {
    match helpdesk {
        Helpdesk::Zendesk => json!({ "error": zendesk_error, "description": message }),
        Helpdesk::Gorgias => json!({ "error": { "msg": message } }),
    }
}

fn not_found(helpdesk: Helpdesk) -> Answer {
    Answer::new(404, error_body(helpdesk, "RecordNotFound", "Not found"))
}

fn numeric_or_string(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

fn answer(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
    body: Result<&[u8], &BodyProblem>,
) -> Answer {
    let method = req.method();
    let path = req.path();
    let violate = |state: &mut State, why: &str| {
        state
            .violations
            .push(format!("{helpdesk:?} {method} {path}: {why}"));
    };

    // The admin routes (webhooks, triggers, integrations) have their own steps.
    if let Some(found) = admin::route(helpdesk, method, path) {
        return admin::answer(shared, state, req, helpdesk, found, body);
    }
    if let Some(answer) = bulk::answer(shared, state, req, helpdesk, body) {
        return answer;
    }
    if let Some(answer) = safe_update::show_ticket(shared, state, req, helpdesk) {
        return answer;
    }
    if let Some(answer) = listing::answer(shared, state, req, helpdesk) {
        return answer;
    }
    if let Some(answer) = ticket_writes::answer(shared, state, req, helpdesk, body) {
        return answer;
    }
    // 1. Route. Breaches of the request's shape are recorded whatever the answer turns out to be.
    let (op, id) = match route(helpdesk, method, path) {
        Ok(found) => found,
        Err((status, why)) => {
            violate(state, &why);
            return Answer::new(status, error_body(helpdesk, "InvalidEndpoint", "Not found"));
        }
    };
    match (op, helpdesk) {
        (Op::ReplaceTags, Helpdesk::Zendesk) => violate(
            state,
            "POST replaces every tag of the ticket (add with PUT)",
        ),
        (Op::ReplaceTags, Helpdesk::Gorgias) => violate(
            state,
            "PUT replaces every tag of the ticket (add with POST)",
        ),
        _ => {}
    }
    let tags = match op {
        Op::AddTags | Op::ReplaceTags | Op::RemoveTags => Some(match body {
            Ok(bytes) => parse_tag_body(helpdesk, req.headers(), bytes),
            Err(BodyProblem::TooLarge) => Err(format!("body over {MAX_BODY_BYTES} bytes")),
            Err(BodyProblem::Unreadable(e)) => Err(format!("body could not be read: {e}")),
        }),
        Op::ReadTags | Op::GetPerson => None,
    };
    if let Some(Err(why)) = &tags {
        violate(state, &format!("bad body: {why}"));
    }

    // 2. Authentication.
    if let Err(why) = check_auth(shared, helpdesk, req.headers()) {
        violate(state, &format!("authentication failed: {why}"));
        return match helpdesk {
            Helpdesk::Zendesk => Answer::new(401, json!({ "error": "Couldn't authenticate you" })),
            Helpdesk::Gorgias => Answer::new(401, json!({ "error": { "msg": "Unauthorized" } })),
        };
    }

    // 3. Rate limit.
    let now = Instant::now();
    if let Some(bucket) = state.bucket_mut(helpdesk) {
        if let Err(retry_after) = bucket.try_take(now) {
            state.rate_limited += 1;
            violate(state, "over the rate limit (429)");
            let mut answer = Answer::new(
                429,
                error_body(helpdesk, "APIRateLimitExceeded", "Too many requests"),
            );
            answer.retry_after = Some(retry_after);
            return answer;
        }
    }

    // 4. Injected failures.
    if let Some((status, retry_after)) = state.injected_failure(now) {
        let mut answer = Answer::new(
            status,
            error_body(helpdesk, "InjectedFailure", "Injected failure"),
        );
        answer.retry_after = retry_after;
        return answer;
    }

    // 5. Body shape.
    let tags = match tags {
        Some(Ok(tags)) => tags,
        Some(Err(why)) => return Answer::new(400, error_body(helpdesk, "InvalidValue", &why)),
        None => Vec::new(),
    };

    // 6. The operation.
    if op == Op::GetPerson {
        let people = match helpdesk {
            Helpdesk::Zendesk => &state.zendesk_users,
            Helpdesk::Gorgias => &state.gorgias_customers,
        };
        let Some(email) = people.get(&id) else {
            return not_found(helpdesk);
        };
        let name = email.split('@').next().unwrap_or(email);
        let person = json!({ "id": numeric_or_string(&id), "email": email, "name": name });
        return match helpdesk {
            Helpdesk::Zendesk => Answer::new(200, json!({ "user": person })),
            Helpdesk::Gorgias => Answer::new(200, person),
        };
    }

    let key = (helpdesk, id);
    if let Some(ticket) = state.tickets.get(&key) {
        if ticket.deleted {
            return not_found(helpdesk);
        }
        if ticket.closed && helpdesk == Helpdesk::Zendesk && op != Op::ReadTags {
            return Answer::new(
                422,
                json!({
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": { "status": [ { "description": "Status: closed prevents ticket update" } ] }
                }),
            );
        }
    } else if op == Op::ReadTags {
        return tag_list_answer(helpdesk, 200, &BTreeSet::new());
    }
    // Writes create tickets never seen before.
    let ticket = state.tickets.entry(key).or_default();
    let zendesk_write = helpdesk == Helpdesk::Zendesk && op != Op::ReadTags;
    if zendesk_write {
        if let Err(answer) = safe_update::check(ticket, body, None) {
            return answer;
        }
    }
    match op {
        Op::ReadTags | Op::GetPerson => {}
        Op::AddTags => {
            ticket.tags.extend(tags);
            ticket.writes += 1;
        }
        Op::ReplaceTags => {
            ticket.tags = tags.into_iter().collect();
            ticket.writes += 1;
        }
        Op::RemoveTags => {
            for tag in &tags {
                ticket.tags.remove(tag);
            }
            ticket.writes += 1;
        }
    }
    if zendesk_write {
        safe_update::written(ticket);
    }
    match (helpdesk, op) {
        (Helpdesk::Gorgias, Op::AddTags) => Answer::empty(201),
        (Helpdesk::Gorgias, Op::ReplaceTags) => Answer::empty(200),
        (Helpdesk::Gorgias, Op::RemoveTags) => Answer::empty(204),
        _ => tag_list_answer(helpdesk, 200, &ticket.tags),
    }
}

/// The steps every routed call passes before its own: authentication (401), the rate limit (429,
/// recorded as a violation) and injected failures. `Some` is the answer that ends the call.
fn gate(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
) -> Option<Answer> {
    let who = format!("{helpdesk:?} {} {}", req.method(), req.path());
    if let Err(why) = check_auth(shared, helpdesk, req.headers()) {
        state
            .violations
            .push(format!("{who}: authentication failed: {why}"));
        return Some(Answer::new(
            401,
            error_body(helpdesk, "Unauthorized", "Couldn't authenticate you"),
        ));
    }
    let now = Instant::now();
    if let Some(bucket) = state.bucket_mut(helpdesk) {
        if let Err(retry_after) = bucket.try_take(now) {
            state.rate_limited += 1;
            state
                .violations
                .push(format!("{who}: over the rate limit (429)"));
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

fn tag_list_answer(helpdesk: Helpdesk, status: u16, tags: &BTreeSet<String>) -> Answer {
    match helpdesk {
        Helpdesk::Zendesk => Answer::new(status, json!({ "tags": tags })),
        Helpdesk::Gorgias => {
            let data: Vec<Value> = tags
                .iter()
                .enumerate()
                .map(|(i, name)| json!({ "id": i + 1, "name": name }))
                .collect();
            Answer::new(status, json!({ "data": data }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zendesk_bucket_allows_exactly_the_limit_then_refills_at_limit_per_minute() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(60, Duration::from_secs(60), t0);
        for _ in 0..60 {
            assert!(bucket.try_take(t0).is_ok());
        }
        assert_eq!(bucket.remaining(), 0);
        assert_eq!(bucket.try_take(t0), Err(1));
        // One token per second comes back.
        let t1 = t0 + Duration::from_millis(999);
        assert!(bucket.try_take(t1).is_err());
        let t2 = t0 + Duration::from_secs(1);
        assert!(bucket.try_take(t2).is_ok());
        assert!(bucket.try_take(t2).is_err());
        // Never more than the capacity.
        let later = t2 + Duration::from_secs(3600);
        bucket.drain(later);
        assert_eq!(bucket.remaining(), 60);
    }

    #[test]
    fn gorgias_bucket_drains_capacity_per_window_and_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(40, Duration::from_secs(20), t0);
        for _ in 0..40 {
            assert!(bucket.try_take(t0).is_ok());
        }
        assert_eq!(bucket.used(), 40);
        assert_eq!(bucket.try_take(t0), Err(1));
        // 2 calls drain per second.
        let t1 = t0 + Duration::from_millis(500);
        assert!(bucket.try_take(t1).is_ok());
        assert_eq!(bucket.used(), 40);
        bucket.drain(t0 + Duration::from_secs(10));
        assert_eq!(bucket.used(), 21);
    }

    #[test]
    fn slow_buckets_give_whole_seconds_to_wait() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(2, Duration::from_secs(60), t0);
        assert!(bucket.try_take(t0).is_ok());
        assert!(bucket.try_take(t0).is_ok());
        assert_eq!(bucket.try_take(t0), Err(30));
        assert_eq!(bucket.try_take(t0 + Duration::from_millis(100)), Err(30));
        assert_eq!(bucket.try_take(t0 + Duration::from_secs(29)), Err(1));
    }

    #[test]
    fn routes_follow_the_vendors_paths_and_verbs() {
        let z = Helpdesk::Zendesk;
        let g = Helpdesk::Gorgias;
        let ok = |h, m: Method, p: &str| route(h, &m, p).ok();
        assert_eq!(
            ok(z, Method::PUT, "/api/v2/tickets/7/tags"),
            Some((Op::AddTags, "7".into()))
        );
        assert_eq!(
            ok(z, Method::PUT, "/api/v2/tickets/7/tags.json"),
            Some((Op::AddTags, "7".into()))
        );
        assert_eq!(
            ok(z, Method::POST, "/api/v2/tickets/7/tags"),
            Some((Op::ReplaceTags, "7".into()))
        );
        assert_eq!(
            ok(z, Method::GET, "/api/v2/users/9.json"),
            Some((Op::GetPerson, "9".into()))
        );
        assert_eq!(
            ok(g, Method::POST, "/api/tickets/7/tags"),
            Some((Op::AddTags, "7".into()))
        );
        assert_eq!(
            ok(g, Method::PUT, "/api/tickets/7/tags"),
            Some((Op::ReplaceTags, "7".into()))
        );
        assert_eq!(
            ok(g, Method::GET, "/api/customers/9"),
            Some((Op::GetPerson, "9".into()))
        );
        assert!(route(z, &Method::PUT, "/api/v2/tickets/abc/tags").is_err());
        assert!(route(z, &Method::GET, "/api/v2/customers/9").is_err());
        assert!(route(g, &Method::GET, "/api/users/9").is_err());
        assert_eq!(
            route(z, &Method::PATCH, "/api/v2/tickets/7/tags")
                .err()
                .map(|e| e.0),
            Some(405)
        );
    }

    #[test]
    fn tag_bodies_must_be_non_empty_string_arrays_under_the_vendors_field() {
        let mut json_headers = HeaderMap::new();
        json_headers.insert(
            CONTENT_TYPE,
            actix_web::http::header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let z = Helpdesk::Zendesk;
        let g = Helpdesk::Gorgias;
        assert_eq!(
            parse_tag_body(z, &json_headers, br#"{"tags":["vip","x"]}"#),
            Ok(vec!["vip".into(), "x".into()])
        );
        assert_eq!(
            parse_tag_body(g, &json_headers, br#"{"names":["VIP customer"]}"#),
            Ok(vec!["VIP customer".into()])
        );
        for bad in [
            &br#"{"tags":[]}"#[..],
            br#"{"tags":"vip"}"#,
            br#"{"tags":[1]}"#,
            br#"["vip"]"#,
            b"not json",
            br#"{"tags":["a b"]}"#,
            br#"{"names":["vip"]}"#,
        ] {
            assert!(
                parse_tag_body(z, &json_headers, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_tag_body(g, &json_headers, br#"{"tags":["vip"]}"#).is_err());
        assert!(parse_tag_body(z, &HeaderMap::new(), br#"{"tags":["vip"]}"#).is_err());
    }
}
