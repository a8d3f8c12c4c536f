//! `setup zendesk`: the trigger webhook, its signing secret, and the ticket-created trigger.
//!
//! Followed: Zendesk Webhooks API (developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks:
//! `POST /api/v2/webhooks` with `{"webhook":{name, endpoint, http_method, request_format, status,
//! subscriptions}}`, `subscriptions: ["conditional_ticket_events"]` for a webhook that triggers
//! notify; `GET /api/v2/webhooks?filter[name_contains]=…` → `{"webhooks":[…]}`;
//! `PUT /api/v2/webhooks/{id}`; `GET /api/v2/webhooks/{id}/signing_secret` →
//! `{"signing_secret":{"algorithm","secret"}}`) and the Triggers API
//! (developer.zendesk.com/api-reference/ticketing/business-rules/triggers: `POST /api/v2/triggers`
//! with `{"trigger":{title, conditions:{all, any}, actions}}`, `GET /api/v2/triggers/search?query=…`,
//! `PUT /api/v2/triggers/{id}`; "ticket is created" is `update_type is Create`, "tags contain none
//! of" is `current_tags not_includes "a b"`, the webhook action is
//! `{"field":"notification_webhook","value":[webhook_id, body]}`).

use std::io::Write;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::secret_file::write_secret;
use super::{with_query, Report, Session, SetupError, SetupOptions, Step, Upsert, NAME};
use crate::domain::Tag;
use crate::helpdesk::ZendeskClient;

/// The trigger's title; a second run finds the trigger by it.
pub const TRIGGER_TITLE: &str = "ltv-tagger: new ticket";

/// The JSON body the trigger sends (the README's, which `http/webhooks/zendesk.rs` parses).
pub const TRIGGER_BODY: &str = r#"{"ticket_id": "{{ticket.id}}", "requester_email": "{{ticket.requester.email}}", "requester_id": "{{ticket.requester.id}}", "tags": "{{ticket.tags}}"}"#;

const WEBHOOKS_UI: &str = "Admin Center → Apps and integrations → Actions and webhooks → Webhooks";
const TRIGGERS_UI: &str = "Admin Center → Objects and rules → Business rules → Triggers";

/// What `setup zendesk` needs besides the command line.
pub struct ZendeskSetup<'a> {
    pub client: &'a ZendeskClient,
    /// Every tag the policy can write: the trigger's nullifying condition.
    pub tags: &'a [Tag],
    /// `zendesk.webhook_secret` if one is configured, to say whether it matches.
    pub configured_secret: Option<&'a SecretString>,
}

pub async fn setup_zendesk(
    z: &ZendeskSetup<'_>,
    opts: &SetupOptions,
    out: &mut dyn Write,
) -> Result<Report, SetupError> {
    let mut s = Session::new(z.client.api(), opts.dry_run, out);
    let webhook_id = webhook(&mut s, opts).await?;
    secret(&mut s, z, opts, webhook_id.as_deref()).await?;
    trigger(&mut s, z.tags, webhook_id.as_deref()).await?;
    Ok(s.finish())
}

fn desired_webhook(opts: &SetupOptions) -> Value {
    json!({
        "name": NAME,
        "endpoint": opts.endpoint("zendesk"),
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    })
}

/// Finds the webhook by name, creates or updates it; its id (None in a dry run that would create it).
async fn webhook(s: &mut Session<'_>, opts: &SetupOptions) -> Result<Option<String>, SetupError> {
    let wanted = desired_webhook(opts);
    let list = s
        .read(&with_query(
            "/api/v2/webhooks",
            &[("filter[name_contains]", NAME)],
        ))
        .await?;
    let found = list
        .get("webhooks")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|w| w["name"] == json!(NAME)))
        .cloned();
    let what = format!(
        "webhook {NAME:?} → {}",
        wanted["endpoint"].as_str().unwrap_or("")
    );
    let step = |id: Option<String>, change| Step {
        what: what.clone(),
        id,
        change,
        admin_path: format!("{WEBHOOKS_UI} → {NAME}"),
    };
    let body = json!({ "webhook": wanted });
    let same = found.as_ref().is_some_and(|existing| {
        [
            "endpoint",
            "http_method",
            "request_format",
            "status",
            "subscriptions",
        ]
        .iter()
        .all(|k| existing.get(*k) == wanted.get(*k))
    });
    let u = Upsert {
        kind: "webhook",
        collection: "/api/v2/webhooks",
        created_id: "/webhook/id",
        found: found.as_ref(),
        same,
        body: &body,
        shown: &body,
    };
    s.upsert(u, step).await
}

/// Reads the signing secret and writes it to `--secret-out`, never to the output.
async fn secret(
    s: &mut Session<'_>,
    z: &ZendeskSetup<'_>,
    opts: &SetupOptions,
    webhook_id: Option<&str>,
) -> Result<(), SetupError> {
    let path = format!(
        "/api/v2/webhooks/{}/signing_secret",
        webhook_id.unwrap_or("{id}")
    );
    let Some(answer) = s.read_secret(&path).await? else {
        return Ok(());
    };
    let secret = answer
        .pointer("/signing_secret/secret")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(|v| SecretString::from(v.to_owned()))
        .ok_or_else(|| s.fail(&"GET signing_secret: the answer has no signing_secret.secret"))?;
    match &opts.secret_out {
        Some(file) => {
            let change = write_secret(file, &secret).map_err(|e| s.fail(&format!("{e:#}")))?;
            s.record(Step {
                what: format!("signing secret in {} (mode 0600)", file.display()),
                id: None,
                change,
                admin_path: format!(
                    "set zendesk.webhook_secret_file = {:?} and restart",
                    file.display().to_string()
                ),
            });
        }
        None => s.say(&format!(
            "signing secret: not shown. Rerun with --secret-out FILE to have it written (mode 0600), \
             or reveal it in {WEBHOOKS_UI} → {NAME} → Signing secret; put it in zendesk.webhook_secret_file"
        )),
    }
    match z.configured_secret {
        Some(c) if c.expose_secret() == secret.expose_secret() => {
            s.say("the configured zendesk.webhook_secret matches this webhook's signing secret")
        }
        Some(_) => s.say(
            "the configured zendesk.webhook_secret does NOT match this webhook's signing secret: \
             install the new one and restart, or every delivery gets 401",
        ),
        None => {}
    }
    Ok(())
}

fn desired_trigger(tags: &[Tag], webhook_id: &str) -> Value {
    let mut all = vec![json!({ "field": "update_type", "operator": "is", "value": "Create" })];
    if !tags.is_empty() {
        let names: Vec<String> = tags.iter().map(Tag::to_string).collect();
        all.push(json!({ "field": "current_tags", "operator": "not_includes", "value": names.join(" ") }));
    }
    json!({
        "title": TRIGGER_TITLE,
        "active": true,
        "conditions": { "all": all, "any": [] },
        "actions": [ { "field": "notification_webhook", "value": [webhook_id, TRIGGER_BODY] } ],
    })
}

/// Conditions compared as (field, operator, value) sets: Zendesk may reorder them.
fn conditions_match(existing: &Value, wanted: &Value) -> bool {
    let set = |v: &Value, list: &str| {
        let mut items: Vec<String> = v
            .pointer(&format!("/conditions/{list}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| format!("{}|{}|{}", c["field"], c["operator"], c["value"]))
                    .collect()
            })
            .unwrap_or_default();
        items.sort();
        items
    };
    ["all", "any"]
        .iter()
        .all(|l| set(existing, l) == set(wanted, l))
}

async fn trigger(
    s: &mut Session<'_>,
    tags: &[Tag],
    webhook_id: Option<&str>,
) -> Result<(), SetupError> {
    let id_shown = webhook_id.unwrap_or("<id of the webhook created above>");
    let wanted = desired_trigger(tags, id_shown);
    let found = s
        .read(&with_query(
            "/api/v2/triggers/search",
            &[("query", TRIGGER_TITLE)],
        ))
        .await?
        .get("triggers")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|t| t["title"] == json!(TRIGGER_TITLE)))
        .cloned();
    let step = |id: Option<String>, change| Step {
        what: format!("trigger {TRIGGER_TITLE:?} (ticket created → webhook {NAME:?})"),
        id,
        change,
        admin_path: format!("{TRIGGERS_UI} → {TRIGGER_TITLE}"),
    };
    let body = json!({ "trigger": wanted });
    let same = found.as_ref().is_some_and(|existing| {
        existing.get("active") == wanted.get("active")
            && existing.get("actions") == wanted.get("actions")
            && conditions_match(existing, &wanted)
    });
    let u = Upsert {
        kind: "trigger",
        collection: "/api/v2/triggers",
        created_id: "/trigger/id",
        found: found.as_ref(),
        same,
        body: &body,
        shown: &body,
    };
    s.upsert(u, step).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_body_is_the_one_the_webhook_route_parses() {
        let v: Value = serde_json::from_str(TRIGGER_BODY).expect("json");
        for key in ["ticket_id", "requester_email", "requester_id", "tags"] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn reordered_conditions_are_the_same_trigger() {
        let tags = [
            Tag::parse("vip").expect("tag"),
            Tag::parse("dispute").expect("tag"),
        ];
        let wanted = desired_trigger(&tags, "01H");
        let mut existing = wanted.clone();
        if let Some(all) = existing
            .pointer_mut("/conditions/all")
            .and_then(Value::as_array_mut)
        {
            all.reverse();
        }
        assert!(conditions_match(&existing, &wanted));
        let other = desired_trigger(&tags[..1], "01H");
        assert!(!conditions_match(&other, &wanted));
    }
}
