//! Lenient readers for the JSON fields of webhook bodies: ids as strings or numbers, emails,
//! tags in any of the shapes the helpdesks' placeholders render, and who the requester is.

use serde_json::Value;

use super::WebhookError;
use crate::domain::{truncate, CustomerEmail, Requester, RequesterId, Tag, TicketId};

pub fn parse_json(body: &[u8]) -> Result<Value, WebhookError> {
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

/// The longest id we take (the helpdesks' ids are 64-bit integers; event ids are UUIDs).
const MAX_ID_CHARS: usize = 128;

/// The longest email address there is (RFC 5321 path limit).
const MAX_EMAIL_CHARS: usize = 254;

/// An id given as a string or a number; empty strings and nulls are absent.
pub fn field_id(v: &Value, key: &str) -> Result<Option<String>, WebhookError> {
    match v.get(key) {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(Value::String(_)) | None | Some(Value::Null) => field_text(v, key, MAX_ID_CHARS),
        Some(other) => Err(WebhookError::BadRequest(format!(
            "{key} must be a string or an integer, got {}",
            truncate(&other.to_string(), 40)
        ))),
    }
}

/// A string field, trimmed, at most `max` characters; empty strings and nulls are absent.
fn field_text(v: &Value, key: &str, max: usize) -> Result<Option<String>, WebhookError> {
    let bad = |m: String| Err(WebhookError::BadRequest(m));
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else if s.chars().any(char::is_control) {
                bad(format!("{key} contains control characters"))
            } else if s.chars().count() > max {
                bad(format!(
                    "{key} is {} characters long, more than the {max} allowed",
                    s.chars().count()
                ))
            } else {
                Ok(Some(s.to_string()))
            }
        }
        Some(other) => bad(format!(
            "{key} must be a string, got {}",
            truncate(&other.to_string(), 40)
        )),
    }
}

/// An email address (up to 254 characters), normalised; empty strings and nulls are absent.
pub fn field_email(v: &Value, key: &str) -> Result<Option<CustomerEmail>, WebhookError> {
    match field_text(v, key, MAX_EMAIL_CHARS)? {
        None => Ok(None),
        Some(s) => CustomerEmail::parse(&s)
            .map(Some)
            .map_err(|e| WebhookError::BadRequest(format!("{key}: {e}"))),
    }
}

/// Tags as `"a b c"`, `"a,b,c"` or `["a","b"]`; lower-cased; odd entries are ignored (they are the
/// helpdesk's own tags, we only compare ours against them).
pub fn field_tags(v: &Value, key: &str) -> Result<Vec<String>, WebhookError> {
    tags_with(v, key, |t| t.as_str().to_string())
}

/// [`field_tags`] with each tag's case kept, for helpdesks whose tags are case-sensitive (Gorgias).
pub fn field_tags_as_sent(v: &Value, key: &str) -> Result<Vec<String>, WebhookError> {
    tags_with(v, key, |t| t.as_configured().to_string())
}

fn tags_with(v: &Value, key: &str, name: fn(&Tag) -> String) -> Result<Vec<String>, WebhookError> {
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
        .map(|t| name(&t))
        .collect();
    tags.dedup();
    Ok(tags)
}

/// The ticket id at `key` (`label` names it in errors); `missing` says how to fix its absence.
pub fn ticket_id(
    v: &Value,
    key: &str,
    label: &str,
    missing: &str,
) -> Result<TicketId, WebhookError> {
    let raw = field_id(v, key)?.ok_or_else(|| WebhookError::BadRequest(missing.to_string()))?;
    TicketId::parse(&raw).map_err(|e| WebhookError::BadRequest(format!("{label}: {e}")))
}

/// Who the customer is: the email at `email_key` when the body has one, else the id at
/// `id_key`. Keys are named in errors with `prefix` (`detail.` for event subscriptions).
pub fn requester(
    v: &Value,
    email_key: Option<&str>,
    id_key: &str,
    prefix: &str,
) -> Result<Requester, WebhookError> {
    let email = match email_key {
        Some(key) => field_email(v, key)?,
        None => None,
    };
    // An id that is present must be valid even when the email makes it unneeded: a body that
    // carries garbage is refused at ingest, not found out later.
    let id = match field_id(v, id_key)? {
        Some(id) => Some(
            RequesterId::parse(&id)
                .map_err(|e| WebhookError::BadRequest(format!("{prefix}{id_key}: {e}")))?,
        ),
        None => None,
    };
    if let Some(email) = email {
        return Ok(Requester::Email(email));
    }
    match id {
        Some(id) => Ok(Requester::Id(id)),
        None => {
            let keys = match email_key {
                Some(e) => format!("{prefix}{e} or {prefix}{id_key}"),
                None => format!("{prefix}{id_key}"),
            };
            Err(WebhookError::BadRequest(format!(
                "{keys} is missing: the service cannot tell who the customer is"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_on_spaces_and_commas_and_skip_garbage() {
        let v: Value =
            serde_json::from_str(r#"{"t": " VIP  refund,web,, ", "a": [{"name": "x"}, 3, "Y"]}"#)
                .expect("json");
        assert_eq!(field_tags(&v, "t").expect("tags"), ["vip", "refund", "web"]);
        assert_eq!(field_tags(&v, "a").expect("tags"), ["x", "y"]);
        assert!(field_tags(&v, "missing").expect("tags").is_empty());
    }

    fn refusal(r: Result<impl std::fmt::Debug, WebhookError>) -> String {
        match r {
            Err(WebhookError::BadRequest(m)) => m,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn emails_up_to_254_characters_are_accepted_and_longer_ones_are_named() {
        let long = format!("{}@example.com", "a".repeat(254 - 12));
        let v = serde_json::json!({ "e": long, "f": format!("a{long}"), "n": 7 });
        assert_eq!(
            field_email(&v, "e")
                .expect("254 chars")
                .map(|e| e.to_string()),
            Some(long)
        );
        assert_eq!(
            refusal(field_email(&v, "f")),
            "f is 255 characters long, more than the 254 allowed"
        );
        assert_eq!(refusal(field_email(&v, "n")), "n must be a string, got 7");
    }

    #[test]
    fn every_field_error_says_what_is_wrong_with_that_field() {
        let v = serde_json::json!({
            "ctl": "a\u{0}b", "long": "1".repeat(129), "obj": {"x": 1}, "neg": -7, "abc": "abc"
        });
        assert_eq!(
            refusal(field_id(&v, "ctl")),
            "ctl contains control characters"
        );
        assert!(refusal(field_id(&v, "long")).starts_with("long is 129 characters long"));
        assert!(refusal(field_id(&v, "obj")).starts_with("obj must be a string or an integer"));
        for key in ["neg", "abc"] {
            let m = refusal(requester(&v, None, key, "detail."));
            assert!(
                m.starts_with(&format!(
                    "detail.{key}: requester id must be a positive integer"
                )),
                "{m}"
            );
        }
    }
}
