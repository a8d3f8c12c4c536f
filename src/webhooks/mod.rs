//! The ingest path: read the raw bytes (bounded), authenticate them, parse, commit, answer.
//! No network call and no order-DB query happens here.

pub mod gorgias;
pub mod zendesk;

use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::{truncate, CustomerEmail, Source, Tag, TicketId};
use crate::startup::AppState;
use crate::store::{now_ms, Enqueued, NewEvent};

/// Seconds a helpdesk is asked to wait before retrying when the event could not be committed
/// (Zendesk only retries a 503 whose Retry-After is under 60 s).
pub const RETRY_AFTER_SECS: u64 = 5;

/// A webhook body understood, before it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub source: Source,
    pub ticket_id: TicketId,
    pub event_type: String,
    pub requester_email: Option<CustomerEmail>,
    pub requester_id: Option<String>,
    /// The ticket's tags at the time of the event, lower-cased (used to skip needless writes).
    pub ticket_tags: Vec<String>,
    /// An id of the event itself, when the body carries one (Zendesk events).
    pub event_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0} webhooks are not configured on this service")]
    NotConfigured(&'static str),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("body is larger than server.max_body_bytes ({0} bytes)")]
    TooLarge(usize),
    #[error("the request body did not arrive within server.request_timeout")]
    BodyTimeout,
    #[error("the event could not be stored; retry later")]
    Unavailable(#[source] anyhow::Error),
}

impl WebhookError {
    /// The `outcome` label of `webhooks_received_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            WebhookError::NotConfigured(_) => "not_configured",
            WebhookError::Unauthorized(_) => "unauthorized",
            WebhookError::BadRequest(_) => "bad_request",
            WebhookError::TooLarge(_) => "too_large",
            WebhookError::BodyTimeout => "timeout",
            WebhookError::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::NotConfigured(_) => StatusCode::NOT_FOUND,
            WebhookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            WebhookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, WebhookError::Unavailable(_)) {
            res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        res.json(json!({ "error": self.to_string() }))
    }
}

// ---- body helpers shared by the parsers --------------------------------------------------------

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, WebhookError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(WebhookError::BadRequest(
            "body must be a JSON object".into(),
        ))
    }
}

/// An id given as a string or a number; empty strings and nulls are absent.
pub(crate) fn field_id(v: &Value, key: &str) -> Result<Option<String>, WebhookError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(WebhookError::BadRequest(
            format!("{key} contains control characters"),
        )),
        Some(Value::String(s)) if s.len() <= 128 => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(other) => Err(WebhookError::BadRequest(format!(
            "{key} must be a string or an integer, got {}",
            truncate(&other.to_string(), 40)
        ))),
    }
}

pub(crate) fn field_email(v: &Value, key: &str) -> Result<Option<CustomerEmail>, WebhookError> {
    match field_id(v, key) {
        Ok(None) => Ok(None),
        Ok(Some(s)) => CustomerEmail::parse(&s)
            .map(Some)
            .map_err(|e| WebhookError::BadRequest(format!("{key}: {e}"))),
        Err(_) => Err(WebhookError::BadRequest(format!("{key} must be a string"))),
    }
}

/// Tags as `"a b c"`, `"a,b,c"` or `["a","b"]`; lower-cased; odd entries are ignored (they are the
/// helpdesk's own tags, we only compare ours against them).
pub(crate) fn field_tags(v: &Value, key: &str) -> Result<Vec<String>, WebhookError> {
    let words: Vec<String> = match v.get(key) {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
                _ => None,
            })
            .collect(),
        Some(_) => {
            return Err(WebhookError::BadRequest(format!(
                "{key} must be a string or an array of strings"
            )))
        }
    };
    let mut tags: Vec<String> = words
        .iter()
        .filter_map(|w| Tag::parse(w).ok())
        .map(|t| t.to_string())
        .collect();
    tags.dedup();
    Ok(tags)
}

/// The key a repeated delivery is recognised by: the delivery id when the helpdesk sends one,
/// else the event's own id, else the body's hash within the dedupe window.
pub fn dedupe_key(
    delivery_id: Option<&str>,
    event: &ParsedEvent,
    body: &[u8],
    now_ms: i64,
    window: Duration,
) -> String {
    if let Some(id) = delivery_id.filter(|s| !s.is_empty()) {
        return format!("delivery:{}", truncate(id, 100));
    }
    if let Some(id) = &event.event_id {
        return format!("event:{}", truncate(id, 100));
    }
    let bucket = now_ms / i64::try_from(window.as_millis().max(1)).unwrap_or(i64::MAX);
    format!("body:{}:{bucket}", hex::encode(Sha256::digest(body)))
}

// ---- handlers ---------------------------------------------------------------------------------

fn header_bytes<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// Reads the body, refusing it before buffering when Content-Length is over the limit, and as
/// soon as the streamed bytes pass it otherwise.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, WebhookError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(WebhookError::TooLarge(limit));
    }
    let read = async {
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| WebhookError::BadRequest(format!("cannot read body: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err(WebhookError::TooLarge(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| WebhookError::BodyTimeout)?
}

async fn commit(
    state: &AppState,
    event: ParsedEvent,
    delivery_id: Option<&str>,
    body: &[u8],
) -> Result<HttpResponse, WebhookError> {
    let now = now_ms();
    let new = NewEvent {
        source: event.source,
        ticket_id: event.ticket_id,
        dedupe_key: dedupe_key(delivery_id, &event, body, now, state.dedupe_window),
        event_type: event.event_type,
        requester_email: event.requester_email.map(|e| e.to_string()),
        requester_id: event.requester_id,
        ticket_tags: event.ticket_tags,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    let (source, ticket_id) = (new.source, new.ticket_id);
    let store = state.store.clone();
    let enqueued = state
        .on_main(async move { store.enqueue(&new, now).await })
        .await
        .map_err(WebhookError::Unavailable)?
        .map_err(|e| {
            WebhookError::Unavailable(anyhow::Error::new(e).context("state DB commit failed"))
        })?;
    let (status, job_id) = match enqueued {
        Enqueued::Accepted {
            job_id,
            coalesced: false,
        } => ("queued", Some(job_id)),
        Enqueued::Accepted {
            job_id,
            coalesced: true,
        } => ("coalesced", Some(job_id)),
        Enqueued::Duplicate => ("duplicate", None),
    };
    if job_id.is_some() {
        state.wake_workers.notify_one();
    }
    tracing::info!(source = %source, ticket = %ticket_id, status, "webhook accepted");
    Ok(HttpResponse::Accepted().json(json!({
        "status": status,
        "ticket_id": ticket_id.to_string(),
        "job_id": job_id,
    })))
}

fn record(state: &AppState, source: Source, result: &Result<HttpResponse, WebhookError>) {
    let outcome = match result {
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

pub async fn zendesk_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let result = async {
        let keys = state
            .zendesk_keys
            .as_ref()
            .ok_or(WebhookError::NotConfigured("zendesk"))?;
        let body = read_body(&req, payload, state.max_body_bytes, state.body_timeout).await?;
        let headers = req.headers();
        zendesk::verify(
            keys,
            header_bytes(headers, zendesk::SIGNATURE_HEADER),
            header_bytes(headers, zendesk::TIMESTAMP_HEADER),
            &body,
            chrono::Utc::now(),
        )?;
        let event = zendesk::parse(&body)?;
        let delivery = headers
            .get(zendesk::INVOCATION_HEADER)
            .and_then(|v| v.to_str().ok());
        commit(&state, event, delivery, &body).await
    }
    .await;
    record(&state, Source::Zendesk, &result);
    result
}

pub async fn gorgias_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let result = async {
        let token = state
            .gorgias_token
            .as_ref()
            .ok_or(WebhookError::NotConfigured("gorgias"))?;
        // The token is in a header: check it before reading a byte of the body.
        gorgias::verify(token, header_bytes(req.headers(), gorgias::TOKEN_HEADER))?;
        let body = read_body(&req, payload, state.max_body_bytes, state.body_timeout).await?;
        let event = gorgias::parse(&body)?;
        commit(&state, event, None, &body).await
    }
    .await;
    record(&state, Source::Gorgias, &result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>) -> ParsedEvent {
        ParsedEvent {
            source: Source::Gorgias,
            ticket_id: TicketId::parse("1").expect("id"),
            event_type: "x".into(),
            requester_email: None,
            requester_id: None,
            ticket_tags: vec![],
            event_id: id.map(str::to_string),
        }
    }

    #[test]
    fn dedupe_prefers_the_delivery_id_then_the_event_id_then_the_body() {
        let w = Duration::from_secs(600);
        assert_eq!(
            dedupe_key(Some("inv-1"), &event(Some("e")), b"{}", 0, w),
            "delivery:inv-1"
        );
        assert_eq!(dedupe_key(None, &event(Some("e")), b"{}", 0, w), "event:e");
        let a = dedupe_key(None, &event(None), b"{}", 1_000, w);
        assert_eq!(a, dedupe_key(None, &event(None), b"{}", 2_000, w));
        assert_ne!(a, dedupe_key(None, &event(None), b"{ }", 2_000, w));
        assert_ne!(a, dedupe_key(None, &event(None), b"{}", 601_000, w));
    }

    #[test]
    fn tags_split_on_spaces_and_commas_and_skip_garbage() {
        let v: Value =
            serde_json::from_str(r#"{"t": " VIP  refund,web,, ", "a": [{"name": "x"}, 3, "Y"]}"#)
                .expect("json");
        assert_eq!(field_tags(&v, "t").expect("tags"), ["vip", "refund", "web"]);
        assert_eq!(field_tags(&v, "a").expect("tags"), ["x", "y"]);
        assert!(field_tags(&v, "missing").expect("tags").is_empty());
    }
}
