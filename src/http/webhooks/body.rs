//! The request body, read with a size limit (refused before buffering when the declared length
//! is over it), a deadline, and its buffer's bytes taken from the budget all unverified bodies
//! share (the buffer grows to exactly what is needed, never past the declared length).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
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
    // A Content-Length body cannot grow past its declared length (actix frames it).
    let most = declared.unwrap_or(limit).min(limit);
    let read = async {
        let mut held = HeldBytes::default();
        let mut buf = Vec::new();
        grow(&mut buf, most.min(INITIAL_CAPACITY), budget, &mut held)?;
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| WebhookError::BadRequest(format!("cannot read body: {e}")))?;
            let need = buf.len() + chunk.len();
            if need > limit {
                return Err(WebhookError::TooLarge(limit));
            }
            if need > buf.capacity() {
                let doubled = buf.capacity().saturating_mul(2).min(most);
                grow(&mut buf, need.max(doubled), budget, &mut held)?;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((bytes::Bytes::from(buf), held))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| WebhookError::BodyTimeout)?
}

/// Grows `buf` to exactly `capacity` bytes, taking the new bytes from the budget first: the
/// budget counts what the buffers hold in memory, not only what was received.
fn grow(
    buf: &mut Vec<u8>,
    capacity: usize,
    budget: &BodyBudget,
    held: &mut HeldBytes,
) -> Result<(), WebhookError> {
    let more = capacity.saturating_sub(buf.capacity());
    if !budget.take(held, more) {
        return Err(WebhookError::Busy);
    }
    buf.reserve_exact(capacity - buf.len());
    Ok(())
}
