//! Zendesk safe updates: `safe_update` + `updated_stamp` on a write, and the ticket re-read
//! (`GET /api/v2/tickets/{id}`) that gives fresh tags and a fresh stamp after a 409.

use serde_json::{Map, Value};

/// A ticket as the helpdesk has it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreshTicket {
    /// Lower-cased, as the events' tags are.
    pub tags: Vec<String>,
    /// `None` when the answer carried none: the retry is then a plain write.
    pub updated_at: Option<String>,
}

/// Adds `"safe_update": true, "updated_stamp": stamp` to `object` (the Add Tags body, or the
/// `ticket` object of Update Ticket) when a stamp is known.
pub fn add_stamp(object: &mut Map<String, Value>, stamp: Option<&str>) {
    if let Some(stamp) = stamp {
        object.insert("safe_update".into(), Value::Bool(true));
        object.insert("updated_stamp".into(), Value::String(stamp.to_owned()));
    }
}

/// `{"ticket": {"tags": […], "updated_at": "…"}}` → the ticket's tags and stamp. A ticket without
/// tags has none; non-string tags are skipped.
pub fn fresh_ticket(answer: &Value) -> FreshTicket {
    let ticket = answer.get("ticket").unwrap_or(answer);
    let tags = ticket
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let updated_at = ticket
        .get("updated_at")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    FreshTicket { tags, updated_at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stamp_adds_both_keys_and_no_stamp_adds_none() {
        let mut body = Map::new();
        add_stamp(&mut body, None);
        assert!(body.is_empty());
        add_stamp(&mut body, Some("2024-05-08T13:09:40Z"));
        assert_eq!(
            Value::Object(body),
            json!({ "safe_update": true, "updated_stamp": "2024-05-08T13:09:40Z" })
        );
    }

    #[test]
    fn the_show_ticket_answer_gives_lower_cased_tags_and_the_stamp() {
        let v = json!({ "ticket": { "id": 7, "tags": ["VIP", "web", 3], "updated_at": "2024-05-08T13:09:41Z" } });
        assert_eq!(
            fresh_ticket(&v),
            FreshTicket {
                tags: vec!["vip".into(), "web".into()],
                updated_at: Some("2024-05-08T13:09:41Z".into()),
            }
        );
        assert_eq!(
            fresh_ticket(&json!({ "ticket": {} })),
            FreshTicket::default()
        );
    }
}
