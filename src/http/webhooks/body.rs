//! The request body, read with a size limit (refused before buffering when the declared length
//! is over it), a deadline, and bytes taken from the budget all unverified bodies share.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::BytesMut;
use futures_util::StreamExt;

use super::body_budget::{BodyBudget, HeldBytes};
use super::WebhookError;

/// The buffer a body starts with, whatever its declared length: a stalled connection that
/// declared the maximum holds only what it sent.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// Reads the body, refusing it before buffering when Content-Length is over the limit, and as
/// soon as the streamed bytes pass it otherwise.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<(bytes::Bytes, HeldBytes), WebhookError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(WebhookError::TooLarge(limit));
    }
    let read = async {
        let mut held = HeldBytes::default();
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024).min(INITIAL_CAPACITY));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| WebhookError::BadRequest(format!("cannot read body: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err(WebhookError::TooLarge(limit));
            }
            if !budget.take(&mut held, chunk.len()) {
                return Err(WebhookError::Busy);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf.freeze(), held))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| WebhookError::BodyTimeout)?
}
