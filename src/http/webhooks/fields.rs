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

/// An id given as a string or a number; empty strings and nulls are absent.
pub fn field_id(v: &Value, key: &str) -> Result<Option<String>, WebhookError> {
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

pub fn field_email(v: &Value, key: &str) -> Result<Option<CustomerEmail>, WebhookError> {
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
pub fn field_tags(v: &Value, key: &str) -> Result<Vec<String>, WebhookError> {
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
    let id = field_id(v, id_key)?;
    if let Some(email) = email {
        return Ok(Requester::Email(email));
    }
    match id {
        Some(id) => RequesterId::parse(&id)
            .map(Requester::Id)
            .map_err(|e| WebhookError::BadRequest(format!("{prefix}{id_key}: {e}"))),
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
}
