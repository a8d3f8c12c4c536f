//! The admin routes `ltv-tagger setup` calls: Zendesk webhooks, signing secrets and triggers, Gorgias HTTP integrations.
//!
//! Shapes follow the vendors' references: Zendesk Webhooks API (`POST/GET /api/v2/webhooks`,
//! `GET /api/v2/webhooks?filter[name_contains]=…`, `PUT /api/v2/webhooks/{id}` → 204,
//! `GET /api/v2/webhooks/{id}/signing_secret` → `{"signing_secret":{"algorithm","secret"}}`),
//! Zendesk Triggers API (`POST /api/v2/triggers`, `GET /api/v2/triggers/search?query=…`,
//! `PUT /api/v2/triggers/{id}`; bodies `{"trigger":{title, conditions:{all,any}, actions}}`), and
//! Gorgias Integrations (`GET/POST /api/integrations`, `PUT /api/integrations/{id}`; an HTTP
//! integration is `{name, type:"http", http:{url, method, headers, form, request_content_type,
//! triggers}}`). Requests pass the same authentication, rate-limit and injected-failure steps as
//! the ticket routes; a bad body answers 400 and is recorded as a violation.
//! [`FakeHelpdesk::fail_admin`] makes one route fail.

use std::collections::HashMap;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::Method;
use actix_web::HttpRequest;
use serde_json::{json, Value};

use super::{check_auth, error_body, Answer, BodyProblem, FakeHelpdesk, Helpdesk, Shared, State};

/// What `setup` created at the fake, and the controls.
#[derive(Default)]
pub(crate) struct Admin {
    webhooks: Vec<Value>,
    secrets: HashMap<String, String>,
    triggers: Vec<Value>,
    integrations: Vec<Value>,
    /// (method, path) → status answered instead of the operation.
    failing: HashMap<(String, String), u16>,
    writes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    ListWebhooks,
    CreateWebhook,
    UpdateWebhook,
    SigningSecret,
    SearchTriggers,
    CreateTrigger,
    UpdateTrigger,
    ListIntegrations,
    CreateIntegration,
    UpdateIntegration,
}

impl FakeHelpdesk {
    /// Every `method` request on `path` (query excluded) answers `status` until cleared with 0.
    pub fn fail_admin(&self, method: &str, path: &str, status: u16) {
        let mut state = self.shared.lock();
        let key = (method.to_owned(), path.to_owned());
        if status == 0 {
            state.admin.failing.remove(&key);
        } else {
            state.admin.failing.insert(key, status);
        }
    }

    /// Zendesk webhooks as stored (ids are strings).
    pub fn zendesk_webhooks(&self) -> Vec<Value> {
        self.shared.lock().admin.webhooks.clone()
    }

    /// A webhook's signing secret (created with the webhook).
    pub fn zendesk_signing_secret(&self, webhook_id: &str) -> Option<String> {
        self.shared.lock().admin.secrets.get(webhook_id).cloned()
    }

    /// Zendesk triggers as stored.
    pub fn zendesk_triggers(&self) -> Vec<Value> {
        self.shared.lock().admin.triggers.clone()
    }

    /// Gorgias integrations as stored.
    pub fn gorgias_integrations(&self) -> Vec<Value> {
        self.shared.lock().admin.integrations.clone()
    }

    /// Successful admin creates and updates, both helpdesks.
    pub fn admin_writes(&self) -> usize {
        self.shared.lock().admin.writes
    }
}

/// `Some((route, id))` when the request is for an admin route.
pub(crate) fn route(helpdesk: Helpdesk, method: &Method, path: &str) -> Option<(Route, String)> {
    let path = path.strip_suffix(".json").unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let none = String::new;
    let found = match (helpdesk, method.as_str(), segments.as_slice()) {
        (Helpdesk::Zendesk, "GET", ["api", "v2", "webhooks"]) => (Route::ListWebhooks, none()),
        (Helpdesk::Zendesk, "POST", ["api", "v2", "webhooks"]) => (Route::CreateWebhook, none()),
        (Helpdesk::Zendesk, "PUT", ["api", "v2", "webhooks", id]) => {
            (Route::UpdateWebhook, (*id).to_owned())
        }
        (Helpdesk::Zendesk, "GET", ["api", "v2", "webhooks", id, "signing_secret"]) => {
            (Route::SigningSecret, (*id).to_owned())
        }
        (Helpdesk::Zendesk, "GET", ["api", "v2", "triggers", "search"]) => {
            (Route::SearchTriggers, none())
        }
        (Helpdesk::Zendesk, "POST", ["api", "v2", "triggers"]) => (Route::CreateTrigger, none()),
        (Helpdesk::Zendesk, "PUT", ["api", "v2", "triggers", id]) => {
            (Route::UpdateTrigger, (*id).to_owned())
        }
        (Helpdesk::Gorgias, "GET", ["api", "integrations"]) => (Route::ListIntegrations, none()),
        (Helpdesk::Gorgias, "POST", ["api", "integrations"]) => (Route::CreateIntegration, none()),
        (Helpdesk::Gorgias, "PUT", ["api", "integrations", id]) => {
            (Route::UpdateIntegration, (*id).to_owned())
        }
        _ => return None,
    };
    Some(found)
}

/// Answers an admin request: authentication, rate limit, injected failures, the route's own
/// failure, body shape, then the operation.
pub(crate) fn answer(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
    (route, id): (Route, String),
    body: Result<&[u8], &BodyProblem>,
) -> Answer {
    let violate = |state: &mut State, why: &str| {
        let line = format!("{helpdesk:?} {} {}: {why}", req.method(), req.path());
        state.violations.push(line);
    };
    if let Err(why) = check_auth(shared, helpdesk, req.headers()) {
        violate(state, &format!("authentication failed: {why}"));
        return Answer::new(
            401,
            error_body(helpdesk, "Unauthorized", "Couldn't authenticate you"),
        );
    }
    let now = std::time::Instant::now();
    if let Some(bucket) = state.bucket_mut(helpdesk) {
        if let Err(retry_after) = bucket.try_take(now) {
            state.rate_limited += 1;
            let mut answer = Answer::new(
                429,
                error_body(helpdesk, "APIRateLimitExceeded", "Too many requests"),
            );
            answer.retry_after = Some(retry_after);
            return answer;
        }
    }
    if let Some((status, retry_after)) = state.injected_failure(now) {
        let mut answer = Answer::new(
            status,
            error_body(helpdesk, "InjectedFailure", "Injected failure"),
        );
        answer.retry_after = retry_after;
        return answer;
    }
    let key = (req.method().to_string(), req.path().to_owned());
    if let Some(&status) = state.admin.failing.get(&key) {
        return Answer::new(
            status,
            error_body(helpdesk, "InjectedFailure", "Injected admin failure"),
        );
    }
    let writes = matches!(
        route,
        Route::CreateWebhook
            | Route::UpdateWebhook
            | Route::CreateTrigger
            | Route::UpdateTrigger
            | Route::CreateIntegration
            | Route::UpdateIntegration
    );
    let payload = if writes {
        match json_body(req, body).and_then(|v| check_shape(route, &v, &state.admin).map(|()| v)) {
            Ok(v) => Some(v),
            Err(why) => {
                violate(state, &format!("bad body: {why}"));
                return Answer::new(400, error_body(helpdesk, "InvalidValue", &why));
            }
        }
    } else {
        None
    };
    let query: HashMap<String, String> =
        actix_web::web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let admin = &mut state.admin;
    let not_found = || Answer::new(404, error_body(helpdesk, "RecordNotFound", "Not found"));
    match (route, payload) {
        (Route::ListWebhooks, _) => {
            let needle = query
                .get("filter[name_contains]")
                .cloned()
                .unwrap_or_default();
            let found: Vec<Value> = admin
                .webhooks
                .iter()
                .filter(|w| w["name"].as_str().is_some_and(|n| n.contains(&needle)))
                .cloned()
                .collect();
            Answer::new(
                200,
                json!({ "webhooks": found, "meta": { "has_more": false }, "links": {} }),
            )
        }
        (Route::CreateWebhook, Some(v)) => {
            let id = format!("01HFAKEWEBHOOK{:012}", admin.webhooks.len() + 1);
            let mut webhook = v["webhook"].clone();
            webhook["id"] = json!(id);
            admin
                .secrets
                .insert(id.clone(), format!("fake-signing-secret-{id}"));
            admin.webhooks.push(webhook.clone());
            admin.writes += 1;
            Answer::new(201, json!({ "webhook": webhook }))
        }
        (Route::UpdateWebhook, Some(v)) => {
            let Some(stored) = admin.webhooks.iter_mut().find(|w| w["id"] == json!(id)) else {
                return not_found();
            };
            merge(stored, &v["webhook"]);
            admin.writes += 1;
            Answer::empty(204)
        }
        (Route::SigningSecret, _) => match admin.secrets.get(&id) {
            Some(secret) => Answer::new(
                200,
                json!({ "signing_secret": { "algorithm": "SHA256", "secret": secret } }),
            ),
            None => not_found(),
        },
        (Route::SearchTriggers, _) => {
            let needle = query.get("query").cloned().unwrap_or_default();
            let found: Vec<Value> = admin
                .triggers
                .iter()
                .filter(|t| t["title"].as_str().is_some_and(|n| n.contains(&needle)))
                .cloned()
                .collect();
            let count = found.len();
            Answer::new(
                200,
                json!({ "triggers": found, "count": count, "next_page": null }),
            )
        }
        (Route::CreateTrigger, Some(v)) => {
            let mut trigger = v["trigger"].clone();
            trigger["id"] = json!(9000 + admin.triggers.len() + 1);
            if trigger.get("active").is_none() {
                trigger["active"] = json!(true);
            }
            admin.triggers.push(trigger.clone());
            admin.writes += 1;
            Answer::new(201, json!({ "trigger": trigger }))
        }
        (Route::UpdateTrigger, Some(v)) => {
            let Some(stored) = admin
                .triggers
                .iter_mut()
                .find(|t| t["id"].as_u64() == id.parse().ok())
            else {
                return not_found();
            };
            merge(stored, &v["trigger"]);
            admin.writes += 1;
            Answer::new(200, json!({ "trigger": stored.clone() }))
        }
        (Route::ListIntegrations, _) => {
            let kind = query.get("type").cloned();
            let found: Vec<Value> = admin
                .integrations
                .iter()
                .filter(|i| kind.as_deref().map_or(true, |k| i["type"] == json!(k)))
                .cloned()
                .collect();
            Answer::new(
                200,
                json!({ "data": found, "meta": { "next_cursor": null } }),
            )
        }
        (Route::CreateIntegration, Some(v)) => {
            let mut integration = v.clone();
            integration["id"] = json!(700 + admin.integrations.len() + 1);
            admin.integrations.push(integration.clone());
            admin.writes += 1;
            Answer::new(201, integration)
        }
        (Route::UpdateIntegration, Some(v)) => {
            let Some(stored) = admin
                .integrations
                .iter_mut()
                .find(|i| i["id"].as_u64() == id.parse().ok())
            else {
                return not_found();
            };
            merge(stored, &v);
            admin.writes += 1;
            Answer::new(202, stored.clone())
        }
        _ => not_found(),
    }
}

/// Replaces the top-level fields `update` names.
fn merge(stored: &mut Value, update: &Value) {
    if let (Some(stored), Some(update)) = (stored.as_object_mut(), update.as_object()) {
        for (k, v) in update {
            if k != "id" {
                stored.insert(k.clone(), v.clone());
            }
        }
    }
}

fn json_body(req: &HttpRequest, body: Result<&[u8], &BodyProblem>) -> Result<Value, String> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "Content-Type is `{content_type}`, expected application/json"
        ));
    }
    let bytes = body.map_err(|_| "body could not be read".to_owned())?;
    serde_json::from_slice(bytes).map_err(|e| format!("body is not valid JSON: {e}"))
}

fn string_in(v: &Value, field: &str, allowed: &[&str]) -> Result<(), String> {
    match v.get(field).and_then(Value::as_str) {
        Some(s) if allowed.is_empty() && !s.trim().is_empty() => Ok(()),
        Some(s) if allowed.contains(&s) => Ok(()),
        Some(s) => Err(format!("`{field}` is {s:?}, expected one of {allowed:?}")),
        None => Err(format!("`{field}` is missing or not a string")),
    }
}

/// What the vendor would refuse with 400/422.
fn check_shape(route: Route, v: &Value, admin: &Admin) -> Result<(), String> {
    match route {
        Route::CreateWebhook | Route::UpdateWebhook => {
            let w = v.get("webhook").ok_or("body has no `webhook` object")?;
            string_in(w, "name", &[])?;
            string_in(w, "endpoint", &[])?;
            let endpoint = w["endpoint"].as_str().unwrap_or("");
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(format!("`endpoint` {endpoint:?} is not an http(s) URL"));
            }
            string_in(w, "http_method", &["GET", "POST", "PUT", "PATCH", "DELETE"])?;
            string_in(w, "request_format", &["json", "xml", "form_encoded"])?;
            string_in(w, "status", &["active", "inactive"])?;
            let subs = w
                .get("subscriptions")
                .and_then(Value::as_array)
                .ok_or("`subscriptions` is missing or not an array")?;
            if subs.iter().any(|s| !s.is_string()) {
                return Err("`subscriptions` holds a non-string".into());
            }
            Ok(())
        }
        Route::CreateTrigger | Route::UpdateTrigger => {
            let t = v.get("trigger").ok_or("body has no `trigger` object")?;
            string_in(t, "title", &[])?;
            let conditions = t.get("conditions").ok_or("`conditions` is missing")?;
            for list in ["all", "any"] {
                let items = conditions
                    .get(list)
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("`conditions.{list}` is missing or not an array"))?;
                for c in items {
                    string_in(c, "field", &[])?;
                    string_in(c, "operator", &[])?;
                }
            }
            let actions = t
                .get("actions")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or("`actions` is missing or empty")?;
            for a in actions {
                string_in(a, "field", &[])?;
                if a["field"] == "notification_webhook" {
                    let value = a["value"]
                        .as_array()
                        .ok_or("notification_webhook `value` is not [webhook_id, body]")?;
                    let (Some(id), Some(body)) = (
                        value.first().and_then(Value::as_str),
                        value.get(1).and_then(Value::as_str),
                    ) else {
                        return Err("notification_webhook `value` is not [webhook_id, body]".into());
                    };
                    if !admin.webhooks.iter().any(|w| w["id"] == json!(id)) {
                        return Err(format!("notification_webhook names unknown webhook {id:?}"));
                    }
                    serde_json::from_str::<Value>(body)
                        .map_err(|e| format!("notification_webhook body is not JSON: {e}"))?;
                }
            }
            Ok(())
        }
        Route::CreateIntegration | Route::UpdateIntegration => {
            string_in(v, "name", &[])?;
            string_in(v, "type", &["http"])?;
            let http = v.get("http").ok_or("`http` is missing")?;
            string_in(http, "url", &[])?;
            string_in(http, "method", &["GET", "POST", "PUT", "DELETE"])?;
            string_in(
                http,
                "request_content_type",
                &["application/json", "application/x-www-form-urlencoded"],
            )?;
            for object in ["headers", "form", "triggers"] {
                if !http.get(object).is_some_and(Value::is_object) {
                    return Err(format!("`http.{object}` is missing or not an object"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
