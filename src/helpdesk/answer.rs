//! A helpdesk's answer body, read with a size cap (a 400 MB error page never reaches memory),
//! and the checks a 2xx answer must pass before the worker believes it.

use reqwest::Method;
use serde_json::Value;

use super::HelpdeskError;

/// The largest answer read. Real answers (a user, a customer, a tag list) are a few KiB.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why an answer's body could not be read whole.
#[derive(Debug)]
pub(super) enum BodyError {
    TooLarge,
    /// Cut off, timed out or unreadable mid-way.
    Read(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => write!(f, "answer over {MAX_ANSWER_BYTES} bytes, not read"),
            BodyError::Read(e) if e.is_timeout() => write!(f, "answer body timed out"),
            BodyError::Read(e) => write!(
                f,
                "answer body cut off: {}",
                crate::connect_error::describe_http(e)
            ),
        }
    }
}

/// Streams the body, stopping as soon as it passes `cap` (or its declared length does).
pub(super) async fn read_capped(
    mut res: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = res.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let start = usize::try_from(declared.unwrap_or(0)).unwrap_or(cap);
    let mut buf = Vec::with_capacity(start.min(64 * 1024));
    while let Some(chunk) = res.chunk().await.map_err(BodyError::Read)? {
        if buf.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The JSON of a 2xx answer. A read (`GET`) needs a JSON object: an empty, truncated or non-JSON
/// body is a transient failure, retried like a 5xx, never "the requester has no email". A write's
/// answer is not needed: anything unparsable is `Null`.
pub(super) fn success_json(
    method: &Method,
    path: &str,
    body: Result<Vec<u8>, BodyError>,
) -> Result<Value, HelpdeskError> {
    let unusable = |why: String| HelpdeskError::Unavailable(format!("{method} {path}: 2xx {why}"));
    let needed = method == Method::GET;
    let bytes = match body {
        Ok(b) => b,
        Err(e) if needed => return Err(unusable(e.to_string())),
        Err(_) => return Ok(Value::Null),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ if !needed => Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
        Ok(_) => Err(unusable("answer is not a JSON object".into())),
        Err(_) if bytes.iter().all(u8::is_ascii_whitespace) => {
            Err(unusable("answer is empty".into()))
        }
        Err(e) => Err(unusable(format!("answer is not JSON ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_needs_a_json_object_and_a_write_does_not() {
        let get = |b: &str| success_json(&Method::GET, "/u", Ok(b.as_bytes().to_vec()));
        assert!(get(r#"{"user":{}}"#).is_ok());
        for bad in ["", "  ", "<html>", r#"{"user":"#, "[]", "null"] {
            let e = get(bad).expect_err(bad);
            assert!(matches!(e, HelpdeskError::Unavailable(_)), "{bad}: {e}");
        }
        let put = |b: &str| success_json(&Method::PUT, "/t", Ok(b.as_bytes().to_vec()));
        assert_eq!(put("").ok(), Some(Value::Null));
        assert_eq!(put("<html>").ok(), Some(Value::Null));
        assert!(success_json(&Method::PUT, "/t", Err(BodyError::TooLarge)).is_ok());
        let e = success_json(&Method::GET, "/u", Err(BodyError::TooLarge)).expect_err("big");
        assert!(e.to_string().contains("not read"), "{e}");
    }
}
