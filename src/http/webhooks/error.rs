//! Why a webhook was refused: the status code (and `Retry-After`) decided in one place, a short
//! JSON message for the client, and the `outcome` label of the metrics.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Seconds a helpdesk is asked to wait before retrying when the event could not be committed
/// (Zendesk only retries a 503 whose Retry-After is under 60 s).
pub const RETRY_AFTER_SECS: u64 = 5;

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
    #[error("too many webhook bodies are being received at once (server.unverified_body_budget_bytes); retry later")]
    Busy,
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
            WebhookError::Busy => "busy",
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
            WebhookError::Busy | WebhookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, WebhookError::Unavailable(_) | WebhookError::Busy) {
            res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        res.json(json!({ "error": self.to_string() }))
    }
}
