//! Zendesk bulk tag writes: `PUT /api/v2/tickets/update_many.json?ids=…` (≤ 100 tickets, tags to
//! add and remove only; it also tags closed tickets) queues a background job, polled at `GET
//! /api/v2/job_statuses/{id}` until it is `completed`, `failed` or `killed`; the answers' shapes;
//! and the account's 30 job slots. A bulk write carries no `safe_update` stamp.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::zendesk_update::tag_changes;
use super::{HelpdeskError, ZendeskClient};
use crate::domain::{Tag, TicketId};

/// Tickets per `update_many` call at most.
pub const MAX_BULK_TICKETS: usize = 100;

/// Jobs an account may have queued or working at once (the 31st `update_many` is a 429).
pub const MAX_BULK_JOBS: usize = 30;

/// Where a bulk job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkState {
    Queued,
    Working,
    Completed,
    Failed,
    Killed,
}

impl BulkState {
    fn parse(s: &str) -> Option<BulkState> {
        Some(match s {
            "queued" => BulkState::Queued,
            "working" => BulkState::Working,
            "completed" => BulkState::Completed,
            "failed" => BulkState::Failed,
            "killed" => BulkState::Killed,
            _ => return None,
        })
    }

    /// Nothing more will happen to the job.
    pub fn is_over(self) -> bool {
        !matches!(self, BulkState::Queued | BulkState::Working)
    }
}

/// Why one ticket of a job was not updated, in Zendesk's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFailure {
    pub error: String,
    pub details: String,
}

impl TicketFailure {
    /// The ticket is gone (deleted): final, like a 404 from the tags endpoint.
    pub fn is_not_found(&self) -> bool {
        self.error == "TicketNotFound" || self.error == "RecordNotFound"
    }
}

impl std::fmt::Display for TicketFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.details.is_empty() {
            true => write!(f, "{}", self.error),
            false => write!(f, "{}: {}", self.error, self.details),
        }
    }
}

/// A job status as polled: its state, its message and the results of the tickets processed.
#[derive(Debug, Clone)]
pub struct BulkStatus {
    pub state: BulkState,
    pub message: Option<String>,
    pub results: Vec<(TicketId, Result<(), TicketFailure>)>,
}

/// A bulk job accepted by the helpdesk; holds one of the account's job slots until dropped.
#[derive(Debug)]
pub struct BulkJob {
    pub id: String,
    _slot: OwnedSemaphorePermit,
}

/// What a helpdesk with bulk tag writes offers the worker.
#[async_trait]
pub trait BulkWrites: Send + Sync {
    /// Tickets the account's budget writes one by one within `zendesk.bulk_after`: a ready
    /// backlog beyond it is written in bulk.
    fn single_write_capacity(&self) -> usize;

    /// Waits for one of the account's job slots, then queues the job: `add` and `remove` on
    /// every ticket of `tickets` (at most [`MAX_BULK_TICKETS`]).
    async fn update_many(
        &self,
        tickets: &[TicketId],
        add: &[Tag],
        remove: &[Tag],
    ) -> Result<BulkJob, HelpdeskError>;

    /// One poll of the job's status.
    async fn job_status(&self, job: &BulkJob) -> Result<BulkStatus, HelpdeskError>;
}

/// The account's bulk settings and job slots (one per job queued or working).
pub(super) struct BulkSlots {
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl BulkSlots {
    pub(super) fn new(requests_per_minute: u32, bulk_after: Duration) -> BulkSlots {
        let capacity = f64::from(requests_per_minute) * bulk_after.as_secs_f64() / 60.0;
        BulkSlots {
            slots: Arc::new(Semaphore::new(MAX_BULK_JOBS)),
            capacity: capacity.floor() as usize,
        }
    }
}

#[async_trait]
impl BulkWrites for ZendeskClient {
    fn single_write_capacity(&self) -> usize {
        self.bulk_slots().capacity
    }

    async fn update_many(
        &self,
        tickets: &[TicketId],
        add: &[Tag],
        remove: &[Tag],
    ) -> Result<BulkJob, HelpdeskError> {
        let slot = self
            .bulk_slots()
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HelpdeskError::Unavailable("bulk job slots closed".into()))?;
        let ids: Vec<String> = tickets.iter().map(TicketId::to_string).collect();
        let answer = self
            .api()
            .send(
                Method::PUT,
                &format!("/api/v2/tickets/update_many.json?ids={}", ids.join(",")),
                Some(&update_many_body(add, remove)),
            )
            .await?;
        let id = answer
            .pointer("/job_status/id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| {
                HelpdeskError::Unavailable(
                    "update_many: 2xx answer without a usable job_status.id".into(),
                )
            })?;
        Ok(BulkJob {
            id: id.to_string(),
            _slot: slot,
        })
    }

    async fn job_status(&self, job: &BulkJob) -> Result<BulkStatus, HelpdeskError> {
        let path = format!("/api/v2/job_statuses/{}.json", job.id);
        let v = self.api().send(Method::GET, &path, None).await?;
        parse_status(&v).ok_or_else(|| {
            HelpdeskError::Unavailable(format!("GET {path}: 2xx {}", "answer is not a job_status"))
        })
    }
}

/// `{"ticket": {"additional_tags": […], "remove_tags": […]}}`, each key only when non-empty.
pub fn update_many_body(add: &[Tag], remove: &[Tag]) -> Value {
    json!({ "ticket": tag_changes(add, remove) })
}

/// `{"job_status": {"status", "message", "results": [{"id", "success", "error", "details"}]}}`;
/// `results` is `null` while the job is queued. `None`: not a job status.
fn parse_status(v: &Value) -> Option<BulkStatus> {
    let status = v.get("job_status")?;
    let state = BulkState::parse(status.get("status")?.as_str()?)?;
    let text = |r: &Value, key: &str| r.get(key).and_then(Value::as_str).map(str::to_string);
    let mut results = Vec::new();
    for r in status
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = match r.get("id") {
            Some(Value::Number(n)) => TicketId::parse(&n.to_string()).ok(),
            Some(Value::String(s)) => TicketId::parse(s).ok(),
            _ => None,
        };
        let Some(id) = id else { continue };
        let failed = r.get("success").and_then(Value::as_bool) == Some(false)
            || r.get("error").is_some()
            || text(r, "status").as_deref() == Some("Failed");
        let outcome = match failed {
            false => Ok(()),
            true => Err(TicketFailure {
                error: text(r, "error").unwrap_or_else(|| "Failed".into()),
                details: text(r, "details").unwrap_or_default(),
            }),
        };
        results.push((id, outcome));
    }
    Some(BulkStatus {
        state,
        message: text(status, "message"),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_status_gives_each_tickets_result_in_zendesks_words() {
        let v = json!({ "job_status": {
            "id": "8b726e606741012ffc2d782bcb7848fe", "status": "completed", "total": 3,
            "progress": 3, "message": "Completed at 2024-05-08",
            "results": [
                { "id": 244, "action": "update", "success": true, "status": "Updated" },
                { "id": 245, "success": false, "status": "Failed", "error": "TicketNotFound", "details": "gone" },
                { "id": "246", "status": "Failed", "error": "RecordInvalid", "details": "Status: closed" },
            ],
        }});
        let s = parse_status(&v).expect("status");
        assert_eq!(s.state, BulkState::Completed);
        let id = |n: &str| TicketId::parse(n).expect("id");
        assert_eq!(s.results[0], (id("244"), Ok(())));
        let gone = s.results[1].1.clone().expect_err("failed");
        assert!(gone.is_not_found());
        assert_eq!(
            s.results[2].1.clone().expect_err("failed").to_string(),
            "RecordInvalid: Status: closed"
        );
        let queued =
            parse_status(&json!({ "job_status": { "status": "queued", "results": null } }))
                .expect("queued");
        assert!(!queued.state.is_over() && queued.results.is_empty());
        assert!(parse_status(&json!({ "tags": [] })).is_none());
    }

    #[test]
    fn the_body_carries_only_the_tags_to_add_and_remove() {
        let tag = |s: &str| Tag::parse(s).expect("tag");
        assert_eq!(
            update_many_body(&[tag("vip")], &[]),
            json!({ "ticket": { "additional_tags": ["vip"] } })
        );
        assert_eq!(
            update_many_body(&[tag("vip-gold")], &[tag("vip")]),
            json!({ "ticket": { "additional_tags": ["vip-gold"], "remove_tags": ["vip"] } })
        );
    }

    #[test]
    fn single_write_capacity_is_the_budget_over_bulk_after() {
        assert_eq!(BulkSlots::new(400, Duration::from_secs(10)).capacity, 66);
        assert_eq!(
            BulkSlots::new(60_000, Duration::from_secs(10)).capacity,
            10_000
        );
    }
}
