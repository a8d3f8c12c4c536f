//! Gorgias's listing for the backfill: `GET /api/tickets` with cursor pagination
//! (`?limit=…&cursor=…`, `meta.next_cursor`); the customer's email comes with each ticket.

use serde_json::Value;

use super::{id_text, path_with_query, Calls, Listed, Page};
use crate::clock::Millis;
use crate::helpdesk::HelpdeskError;

/// Tickets per page (Gorgias allows up to 100).
const PAGE_SIZE: usize = 100;

/// One page of tickets, newest first, keeping those whose status is one of `statuses` (all when
/// empty) and that were created after `created_after`: the list has no such filters itself.
pub async fn page(
    calls: &Calls<'_>,
    statuses: &[String],
    created_after: Option<Millis>,
    cursor: Option<&str>,
) -> Result<Page, HelpdeskError> {
    let size = PAGE_SIZE.to_string();
    let mut params = vec![
        ("limit", size.as_str()),
        ("order_by", "created_datetime:desc"),
    ];
    if let Some(c) = cursor {
        params.push(("cursor", c));
    }
    let v = calls.get(&path_with_query("/api/tickets", &params)).await?;
    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        HelpdeskError::Unavailable("Gorgias answered an unexpected shape: no `data` array".into())
    })?;
    let tickets = data
        .iter()
        .filter(|t| {
            let status = t.get("status").and_then(Value::as_str).unwrap_or_default();
            statuses.is_empty() || statuses.iter().any(|s| s.eq_ignore_ascii_case(status))
        })
        .filter(|t| match created_after {
            None => true,
            Some(after) => t
                .get("created_datetime")
                .and_then(Value::as_str)
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map_or(true, |c| c.timestamp_millis() > after.as_epoch_ms()),
        })
        .filter_map(|t| {
            Some(Listed {
                id: t.get("id").and_then(id_text)?,
                email: t
                    .pointer("/customer/email")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                tags: t
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|ts| {
                        ts.iter()
                            .filter_map(|tag| tag.get("name").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect();
    let next = v
        .pointer("/meta/next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(Page { tickets, next })
}
