//! The ticket's `updated_at` an event carries (Zendesk), kept verbatim for a safe update.

use serde_json::Value;

use super::WebhookError;
use crate::domain::truncate;

/// An ISO 8601 time (`2024-05-08T13:09:40Z`) under `key`, named `name` in errors; empty strings
/// and nulls are absent (the write is then a plain one).
pub fn field_stamp(v: &Value, key: &str, name: &str) -> Result<Option<String>, WebhookError> {
    let bad = |got: &str| {
        WebhookError::BadRequest(format!(
            "{name} must be the ticket's updated time in ISO 8601 (like 2024-05-08T13:09:40Z), got {}",
            truncate(got, 40)
        ))
    };
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            chrono::DateTime::parse_from_rfc3339(s).map_err(|_| bad(s))?;
            Ok(Some(s.to_owned()))
        }
        Some(other) => Err(bad(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_iso_time_is_kept_as_sent_and_anything_else_is_refused_by_name() {
        let v = json!({ "a": " 2024-05-08T13:09:40Z ", "b": "", "c": null, "d": "May 8", "e": 5 });
        let stamp = |k| field_stamp(&v, k, "detail.updated_at");
        assert_eq!(
            stamp("a").ok().flatten().as_deref(),
            Some("2024-05-08T13:09:40Z")
        );
        assert_eq!(stamp("b").ok(), Some(None));
        assert_eq!(stamp("c").ok(), Some(None));
        assert_eq!(stamp("missing").ok(), Some(None));
        for k in ["d", "e"] {
            let e = stamp(k).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("detail.updated_at"), "{k}: {e}");
        }
    }
}
