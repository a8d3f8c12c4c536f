//! What can go wrong talking to a helpdesk, classified by what the worker does about it.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum HelpdeskError {
    /// 429: try again after `retry_after`.
    #[error("rate limited (429), retry after {}s", .retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// The account is paused (an earlier 429 or `Retry-After`): the job waits in the queue.
    #[error("helpdesk account paused after a 429 or Retry-After, retry after {}s", .retry_after.as_secs())]
    Paused { retry_after: Duration },
    /// 5xx, timeouts, connection errors: worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// 409: the ticket changed since the write's `updated_stamp` (or a concurrent update):
    /// worth retrying, after re-reading the ticket when the write was a safe update.
    #[error("{0}")]
    Conflict(String),
    /// Any other 4xx: retrying the same request will not help.
    #[error("HTTP {status}: {reason}")]
    Rejected { status: u16, reason: String },
}
