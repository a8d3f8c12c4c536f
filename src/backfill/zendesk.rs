//! Zendesk's listing for the backfill: the cursor-paginated search export
//! (`GET /api/v2/search/export`) and the requesters' emails (`GET /api/v2/users/show_many`).

use std::collections::HashMap;

use serde_json::Value;

use super::{id_text, path_with_query, Calls, Listed, Page};
use crate::clock::Millis;
use crate::helpdesk::HelpdeskError;

/// Tickets per page (the export's largest page is 1000; 100 keeps one `show_many` per page).
const PAGE_SIZE: usize = 100;

/// The search query: `type:ticket status:open … created>2026-11-01T00:00:00Z`.
pub fn query(statuses: &[String], created_after: Option<Millis>) -> String {
    let mut q = String::from("type:ticket");
    for s in statuses {
        q.push_str(&format!(" status:{s}"));
    }
    if let Some(t) = created_after {
        q.push_str(&format!(" created>{}", t.to_rfc3339()));
    }
    q
}

/// How many tickets the query matches (`GET /api/v2/search/count`), for the progress bar's ETA.
pub async fn count(calls: &Calls<'_>, query: &str) -> Result<Option<u64>, HelpdeskError> {
    let v = calls
        .get(&path_with_query(
            "/api/v2/search/count",
            &[("query", query)],
        ))
        .await?;
    Ok(v.get("count").and_then(Value::as_u64))
}

/// One page of the export, with each requester's email looked up.
pub async fn page(
    calls: &Calls<'_>,
    query: &str,
    cursor: Option<&str>,
) -> Result<Page, HelpdeskError> {
    let size = PAGE_SIZE.to_string();
    let mut params = vec![
        ("query", query),
        ("filter[type]", "ticket"),
        ("page[size]", size.as_str()),
    ];
    if let Some(c) = cursor {
        params.push(("page[after]", c));
    }
    let v = calls
        .get(&path_with_query("/api/v2/search/export", &params))
        .await?;
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("search/export: no `results` array"))?;
    let mut tickets = Vec::with_capacity(results.len());
    let mut requester_ids: Vec<String> = Vec::new();
    for r in results {
        let Some(id) = r.get("id").and_then(id_text) else {
            continue;
        };
        let requester = r.get("requester_id").and_then(id_text);
        if let Some(req) = &requester {
            if !requester_ids.contains(req) {
                requester_ids.push(req.clone());
            }
        }
        tickets.push((id, requester, tags_of(r)));
    }
    let emails = if requester_ids.is_empty() {
        HashMap::new()
    } else {
        let ids = requester_ids.join(",");
        let users = calls
            .get(&path_with_query(
                "/api/v2/users/show_many",
                &[("ids", ids.as_str())],
            ))
            .await?;
        users
            .get("users")
            .and_then(Value::as_array)
            .map(|us| {
                us.iter()
                    .filter_map(|u| {
                        Some((
                            u.get("id").and_then(id_text)?,
                            u.get("email").and_then(Value::as_str)?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let has_more = v.pointer("/meta/has_more").and_then(Value::as_bool) == Some(true);
    let next = v
        .pointer("/meta/after_cursor")
        .and_then(Value::as_str)
        .filter(|c| has_more && !c.is_empty())
        .map(str::to_string);
    Ok(Page {
        tickets: tickets
            .into_iter()
            .map(|(id, requester, tags)| Listed {
                id,
                email: requester.and_then(|r| emails.get(&r).cloned()),
                tags,
            })
            .collect(),
        next,
    })
}

fn tags_of(r: &Value) -> Vec<String> {
    r.get("tags")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn malformed(what: &str) -> HelpdeskError {
    HelpdeskError::Unavailable(format!("Zendesk answered an unexpected shape: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_each_status_and_the_creation_bound() {
        let after = Millis::from_epoch_ms(1_764_547_200_000);
        assert_eq!(
            query(&["open".into(), "pending".into()], Some(after)),
            "type:ticket status:open status:pending created>2025-12-01T00:00:00Z"
        );
        assert_eq!(query(&[], None), "type:ticket");
    }

    #[test]
    fn query_parameters_are_percent_encoded() {
        assert_eq!(
            path_with_query(
                "/api/v2/search/export",
                &[("query", "type:ticket created>2025"), ("page[size]", "100")]
            ),
            "/api/v2/search/export?query=type%3Aticket+created%3E2025&page%5Bsize%5D=100"
        );
    }
}
