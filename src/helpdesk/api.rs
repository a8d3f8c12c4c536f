//! One call to a helpdesk API: wait for the account's rate budget, send, map the status to a
//! [`HelpdeskError`], honour `Retry-After` by pausing the whole account, count it in the metrics.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::answer::{read_capped, success_json, MAX_ANSWER_BYTES};
use super::HelpdeskError;
use crate::clock::Millis;
use crate::domain::{truncate, Source};
use crate::metrics::Metrics;
use crate::rate_budget::RateBudget;

/// Reads a count of calls left from an answer's headers, if it says.
pub type ReadLeft = fn(&HeaderMap) -> Option<f64>;

/// What is common to both helpdesks' HTTP APIs.
pub struct ApiClient {
    helpdesk: Source,
    http: reqwest::Client,
    base_url: String,
    authorization: SecretString,
    budget: RateBudget,
    metrics: Metrics,
    /// Reads the helpdesk's own count of calls left, if its answer says.
    remaining: ReadLeft,
    /// The longest pause a `Retry-After` on a 5xx/408/409/423 may impose (`worker.max_retry_after`).
    max_retry_after: Duration,
}

/// A pause shorter than this is waited out holding the job; a longer one gives the job back to
/// the queue (shown as waiting) until the pause ends.
const HOLD_THROUGH_PAUSE: Duration = Duration::from_secs(2);

impl ApiClient {
    pub fn new(
        helpdesk: Source,
        base_url: &str,
        authorization: SecretString,
        timeout: Duration,
        budget: RateBudget,
        metrics: Metrics,
        remaining: fn(&HeaderMap) -> Option<f64>,
    ) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("ltv-tagger/", env!("CARGO_PKG_VERSION")))
            // A redirected POST turns into a GET that "succeeds" without writing: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ApiClient {
            helpdesk,
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization,
            budget,
            metrics,
            remaining,
            max_retry_after: Duration::from_secs(60),
        })
    }

    /// Caps the pause a `Retry-After` on a server error may impose on the whole account.
    pub fn with_max_retry_after(mut self, cap: Duration) -> ApiClient {
        self.max_retry_after = cap;
        self
    }

    /// One call, paced under the account's budget. Returns the parsed JSON answer (or `Null`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, HelpdeskError> {
        self.call(method, path, body, None).await
    }

    /// [`ApiClient::send`] to an endpoint with a budget of its own (drawn by the caller): the
    /// endpoint's count of calls left, read from the answer by `left`, caps that budget too.
    pub async fn send_capping(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        endpoint: &RateBudget,
        left: ReadLeft,
    ) -> Result<Value, HelpdeskError> {
        self.call(method, path, body, Some((endpoint, left))).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        endpoint: Option<(&RateBudget, ReadLeft)>,
    ) -> Result<Value, HelpdeskError> {
        // Through a long pause, the job waits in the queue (not as `running`) until it ends.
        match self.budget.paused_for(Millis::now()).await {
            Ok(Some(left)) if left > HOLD_THROUGH_PAUSE => {
                return Err(HelpdeskError::Paused { retry_after: left })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(HelpdeskError::Unavailable(format!(
                    "rate budget: state DB: {}",
                    crate::connect_error::describe_db(&e)
                )))
            }
        }
        self.budget
            .acquire()
            .await
            .map_err(|e| HelpdeskError::Unavailable(format!("rate budget: state DB: {e}")))?;
        let url = format!("{}{path}", self.base_url);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(AUTHORIZATION, self.authorization.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let label = |s: &str| {
            self.metrics
                .helpdesk_requests
                .with_label_values(&[self.helpdesk.as_str(), s])
                .inc()
        };
        let res = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() { "timeout" } else { "error" };
                label(kind);
                // Says what happened (refused, DNS, TLS, timed out); never the headers.
                return Err(HelpdeskError::Unavailable(format!(
                    "{method} {path}: {}",
                    crate::connect_error::describe_http(&e)
                )));
            }
        };
        let status = res.status();
        label(status.as_str());
        if let Some(left) = (self.remaining)(res.headers()) {
            self.budget.cap(left).await;
        }
        if let Some((budget, read)) = endpoint {
            if let Some(left) = read(res.headers()) {
                budget.cap(left).await;
            }
        }
        let retry_after = parse_retry_after(res.headers());
        let body = read_capped(res, MAX_ANSWER_BYTES).await;
        if status.is_success() {
            return success_json(&method, path, body);
        }
        let text = match body {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => format!("({e})"),
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after.unwrap_or(Duration::from_secs(10));
            self.budget.pause(wait).await;
            return Err(HelpdeskError::RateLimited { retry_after: wait });
        }
        let reason = reason_of(&text);
        if status.is_redirection() {
            return Err(HelpdeskError::Rejected {
                status: status.as_u16(),
                reason: format!("{method} {path}: redirected: check the helpdesk's api_base_url"),
            });
        }
        // 409/423: a concurrent update of the same ticket (likely right after it was created).
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::CONFLICT
            || status == StatusCode::LOCKED
        {
            // A proxy's error page may ask for hours: never pause tagging longer than the cap.
            if let Some(wait) = retry_after {
                self.budget.pause(wait.min(self.max_retry_after)).await;
            }
            let message = format!("{method} {path}: HTTP {}: {reason}", status.as_u16());
            return Err(if status == StatusCode::CONFLICT {
                HelpdeskError::Conflict(message)
            } else {
                HelpdeskError::Unavailable(message)
            });
        }
        Err(HelpdeskError::Rejected {
            status: status.as_u16(),
            reason: format!("{method} {path}: {reason}"),
        })
    }
}

/// `Authorization: Basic base64(credentials)`, kept secret.
pub fn basic_auth(credentials: &str) -> SecretString {
    use base64::Engine;
    SecretString::from(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    ))
}

/// The non-empty string at `pointer` in an API answer.
pub fn email_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

/// `Retry-After` in seconds (integer or decimal); HTTP dates are rare on these APIs and ignored.
fn parse_retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(3600.0)))
}

/// The helpdesk's own words, shortened: Zendesk `{"error","description","details"}`, Gorgias
/// `{"error":{"msg"}}` or plain text.
fn reason_of(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let pick = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o
                .get("msg")
                .or_else(|| o.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        }
    };
    let mut parts: Vec<String> = Vec::new();
    parts.extend(v.get("error").and_then(pick));
    parts.extend(v.get("description").and_then(pick));
    if let Some(d) = v.get("details") {
        parts.push(d.to_string());
    }
    if parts.is_empty() {
        parts.push(if text.trim().is_empty() {
            "(empty answer)".into()
        } else {
            text.trim().to_string()
        });
    }
    truncate(&parts.join(" — "), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().expect("hv"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("hv"),
        );
        assert_eq!(parse_retry_after(&h), None);
        h.insert(RETRY_AFTER, "-3".parse().expect("hv"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn reasons_keep_the_helpdesks_words() {
        let z = r#"{"error":"RecordInvalid","description":"Record validation errors","details":{"status":[{"description":"Status: closed prevents ticket update"}]}}"#;
        let r = reason_of(z);
        assert!(
            r.starts_with("RecordInvalid — Record validation errors"),
            "{r}"
        );
        assert!(r.contains("closed prevents ticket update"), "{r}");
        assert_eq!(reason_of(r#"{"error":{"msg":"Not found"}}"#), "Not found");
        assert_eq!(reason_of(""), "(empty answer)");
    }
}
