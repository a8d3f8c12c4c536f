//! The ingest pipeline both helpdesks share: read the body (bounded) → authenticate the raw
//! bytes → parse → commit inbox row and job → 202. No network call and no order-DB query.
//!
//! | file | part |
//! |---|---|
//! | `body.rs` | the bounded, timed body reader |
//! | `body_budget.rs` | the byte budget all unverified bodies share |
//! | `fields.rs` | lenient JSON field readers |
//! | `error.rs` | refusals: status, `Retry-After`, outcome label |
//! | `stamp.rs` | the ticket's `updated_at` (Zendesk safe updates) |
//! | `zendesk.rs` | HMAC signature check, trigger and event-subscription bodies |
//! | `gorgias.rs` | shared-token check, HTTP-integration body |

mod body;
pub mod body_budget;
mod error;
mod fields;
pub mod gorgias;
mod stamp;
pub mod zendesk;

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use error::{WebhookError, RETRY_AFTER_SECS};

use super::AppState;
use crate::clock::Millis;
use crate::domain::{Requester, Source, TicketId};
use crate::state::NewEvent;

/// A webhook body understood, before it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub source: Source,
    pub ticket_id: TicketId,
    pub event_type: String,
    pub requester: Requester,
    /// The ticket's tags at the time of the event (used to skip needless writes): lower-cased for
    /// Zendesk, as sent for Gorgias (its tags are case-sensitive).
    pub ticket_tags: Vec<String>,
    /// An id of the event itself, when the body carries one (Zendesk events).
    pub event_id: Option<String>,
    /// The ticket's `updated_at` as the event saw it (Zendesk): the write's `updated_stamp`.
    pub ticket_updated_at: Option<String>,
}

/// An authentic event and the helpdesk's id of this delivery, if it sends one.
pub struct Authentic {
    pub event: ParsedEvent,
    pub delivery_id: Option<String>,
}

/// The key a repeated delivery is recognised by: the delivery id when the helpdesk sends one,
/// else the event's own id, else the body's hash within the dedupe window.
pub fn dedupe_key(
    delivery_id: Option<&str>,
    event: &ParsedEvent,
    body: &[u8],
    now: Millis,
    window: Duration,
) -> String {
    if let Some(id) = delivery_id.filter(|s| !s.is_empty()) {
        return id_key("delivery", id);
    }
    if let Some(id) = &event.event_id {
        return id_key("event", id);
    }
    let bucket = now.as_epoch_ms() / i64::try_from(window.as_millis().max(1)).unwrap_or(i64::MAX);
    format!("body:{}:{bucket}", hex::encode(Sha256::digest(body)))
}

/// `{kind}:{id}` for a short id of printable ASCII (readable in the inbox), else
/// `{kind}#sha256:{hex}`: never truncated, so ids that share a prefix stay two events, and the
/// `#` keeps a hashed key from ever equalling a readable one.
fn id_key(kind: &str, id: &str) -> String {
    const READABLE_MAX: usize = 100;
    if id.len() <= READABLE_MAX && id.bytes().all(|b| b.is_ascii_graphic()) {
        format!("{kind}:{id}")
    } else {
        format!(
            "{kind}#sha256:{}",
            hex::encode(Sha256::digest(id.as_bytes()))
        )
    }
}

fn header_bytes<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// The pipeline. `before_body` checks what the headers alone can tell (a token); `accept`
/// authenticates the raw bytes and parses them.
async fn ingest(
    source: Source,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    before_body: impl FnOnce(&AppState, &HeaderMap) -> Result<(), WebhookError>,
    accept: impl FnOnce(&AppState, &HeaderMap, &[u8]) -> Result<Option<Authentic>, WebhookError>,
) -> Result<HttpResponse, WebhookError> {
    let mut ignored = false;
    let result = async {
        before_body(&state, req.headers())?;
        let (body, _held) = body::read_body(
            &req,
            payload,
            state.max_body_bytes,
            state.body_timeout,
            &state.body_budget,
        )
        .await?;
        let Some(authentic) = accept(&state, req.headers(), &body)? else {
            // Authentic, but of a kind not configured to be queued: nothing is stored.
            ignored = true;
            return Ok(HttpResponse::Accepted().json(json!({ "status": "ignored" })));
        };
        commit(&state, authentic, &body).await
    }
    .await;
    if matches!(result, Err(WebhookError::Busy)) {
        // Shedding load: do not linger reading the rest of an unverified body.
        super::connection::close_after_answer(&req);
    }
    record(&state, source, &result, ignored);
    result
}

async fn commit(
    state: &AppState,
    authentic: Authentic,
    body: &[u8],
) -> Result<HttpResponse, WebhookError> {
    let now = Millis::now();
    let Authentic { event, delivery_id } = authentic;
    let new = NewEvent {
        source: event.source,
        ticket_id: event.ticket_id,
        dedupe_key: dedupe_key(
            delivery_id.as_deref(),
            &event,
            body,
            now,
            state.dedupe_window,
        ),
        event_type: event.event_type,
        requester: Some(event.requester),
        ticket_tags: event.ticket_tags,
        ticket_updated_at: event.ticket_updated_at,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    let (source, ticket_id) = (new.source, new.ticket_id);
    let enqueued = state
        .committer
        .enqueue(new)
        .await
        .map_err(|e| WebhookError::Unavailable(anyhow::Error::new(e)))?;
    let job_id = enqueued.job_id();
    if job_id.is_some() {
        state.wake_workers.notify_one();
    }
    let status = enqueued.status();
    // At debug: a JSON line per delivery at info was a visible share of a webhook's CPU
    // (BENCHMARKS.md, group commit); `ltv_tagger_webhooks_received_total` counts deliveries.
    tracing::debug!(source = %source, ticket = %ticket_id, status, "webhook accepted");
    Ok(HttpResponse::Accepted().json(AcceptedBody {
        status,
        ticket_id: ticket_id.to_string(),
        job_id,
    }))
}

/// The 202 answer's body.
#[derive(serde::Serialize)]
struct AcceptedBody {
    status: &'static str,
    ticket_id: String,
    job_id: Option<crate::domain::JobId>,
}

fn record(
    state: &AppState,
    source: Source,
    result: &Result<HttpResponse, WebhookError>,
    ignored: bool,
) {
    let outcome = match result {
        Ok(_) if ignored => "ignored",
        Ok(_) => "accepted",
        Err(e) => {
            match e {
                WebhookError::Unavailable(cause) => {
                    tracing::error!(source = %source, error = format!("{cause:#}"), "webhook refused: state DB unavailable")
                }
                other => {
                    tracing::warn!(source = %source, status = other.status_code().as_u16(), error = %other, "webhook refused")
                }
            }
            e.outcome()
        }
    };
    state
        .metrics
        .webhooks_received
        .with_label_values(&[source.as_str(), outcome])
        .inc();
}

/// `POST /webhooks/zendesk`
pub async fn zendesk_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    ingest(
        Source::Zendesk,
        req,
        payload,
        state,
        |state, _| match state.zendesk_keys {
            Some(_) => Ok(()),
            None => Err(WebhookError::NotConfigured("zendesk")),
        },
        |state, headers, body| {
            let keys = state
                .zendesk_keys
                .as_ref()
                .ok_or(WebhookError::NotConfigured("zendesk"))?;
            let signer = zendesk::verify_signer(
                keys,
                header_bytes(headers, zendesk::SIGNATURE_HEADER),
                header_bytes(headers, zendesk::TIMESTAMP_HEADER),
                body,
                chrono::Utc::now(),
            )?;
            if signer == zendesk::Signer::TestSecret {
                state.metrics.zendesk_test_signed.inc();
                tracing::warn!("webhook signed with Zendesk's public test secret accepted (zendesk.dangerous_accept_test_secret)");
            }
            let Some(event) = zendesk::parse_accepted(body, &state.zendesk_event_types)? else {
                return Ok(None);
            };
            Ok(Some(Authentic {
                event,
                delivery_id: headers
                    .get(zendesk::INVOCATION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            }))
        },
    )
    .await
}

/// `POST /webhooks/gorgias`
pub async fn gorgias_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    ingest(
        Source::Gorgias,
        req,
        payload,
        state,
        // The token is in a header: check it before reading a byte of the body.
        |state, headers| {
            let token = state
                .gorgias_token
                .as_ref()
                .ok_or(WebhookError::NotConfigured("gorgias"))?;
            gorgias::verify(token, header_bytes(headers, gorgias::TOKEN_HEADER))
        },
        |_, _, body| {
            Ok(Some(Authentic {
                event: gorgias::parse(body)?,
                delivery_id: None,
            }))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RequesterId;

    fn event(id: Option<&str>) -> ParsedEvent {
        ParsedEvent {
            source: Source::Gorgias,
            ticket_id: TicketId::parse("1").expect("id"),
            event_type: "x".into(),
            requester: Requester::Id(RequesterId::parse("1").expect("id")),
            ticket_tags: vec![],
            event_id: id.map(str::to_string),
            ticket_updated_at: None,
        }
    }

    #[test]
    fn long_ids_that_share_a_prefix_are_two_keys_and_short_ids_stay_readable() {
        let w = Duration::from_secs(600);
        let at = Millis::from_epoch_ms(0);
        let (a, b) = ("x".repeat(100) + "-a", "x".repeat(100) + "-b");
        let ka = dedupe_key(Some(&a), &event(None), b"{}", at, w);
        let kb = dedupe_key(Some(&b), &event(None), b"{}", at, w);
        assert_ne!(ka, kb);
        assert!(ka.starts_with("delivery#sha256:"), "{ka}");
        assert_eq!(ka, dedupe_key(Some(&a), &event(None), b"{}", at, w));
        let ea = dedupe_key(None, &event(Some(&a)), b"{}", at, w);
        assert_ne!(ea, dedupe_key(None, &event(Some(&b)), b"{}", at, w));
        let hundred = "y".repeat(100);
        assert_eq!(
            dedupe_key(Some(&hundred), &event(None), b"{}", at, w),
            format!("delivery:{hundred}")
        );
    }

    #[test]
    fn dedupe_prefers_the_delivery_id_then_the_event_id_then_the_body() {
        let w = Duration::from_secs(600);
        assert_eq!(
            dedupe_key(
                Some("inv-1"),
                &event(Some("e")),
                b"{}",
                Millis::from_epoch_ms(0),
                w
            ),
            "delivery:inv-1"
        );
        assert_eq!(
            dedupe_key(None, &event(Some("e")), b"{}", Millis::from_epoch_ms(0), w),
            "event:e"
        );
        let a = dedupe_key(None, &event(None), b"{}", Millis::from_epoch_ms(1_000), w);
        assert_eq!(
            a,
            dedupe_key(None, &event(None), b"{}", Millis::from_epoch_ms(2_000), w)
        );
        assert_ne!(
            a,
            dedupe_key(None, &event(None), b"{ }", Millis::from_epoch_ms(2_000), w)
        );
        assert_ne!(
            a,
            dedupe_key(None, &event(None), b"{}", Millis::from_epoch_ms(601_000), w)
        );
    }
}
