//! Zendesk webhooks: the signature check and the two body styles (trigger JSON, event subscription).

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use super::fields::{field_id, field_tags, parse_json, requester, ticket_id};
use super::stamp::field_stamp;
use super::{ParsedEvent, WebhookError};
use crate::domain::Source;

pub const SIGNATURE_HEADER: &str = "x-zendesk-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-zendesk-webhook-signature-timestamp";
pub const INVOCATION_HEADER: &str = "x-zendesk-webhook-invocation-id";

/// `X-Zendesk-Webhook-Signature-Timestamp` as Zendesk writes it: `2021-03-25T05:09:27Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The signature Zendesk sends for `body` at `timestamp` (used by the demo, tests and benches).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut h) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    h.update(timestamp.as_bytes());
    h.update(body);
    base64::engine::general_purpose::STANDARD.encode(h.finalize().into_bytes())
}

/// What the signature check needs; secrets stay wrapped.
#[derive(Debug, Clone)]
pub struct SignatureKeys {
    pub secret: SecretString,
    /// Zendesk's public test-delivery secret, when `dangerous_accept_test_secret` is on.
    pub test_secret: Option<SecretString>,
    pub tolerance: std::time::Duration,
}

/// Which secret a verified signature was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The webhook's own signing secret.
    Webhook,
    /// Zendesk's public test-delivery secret (only when dangerously allowed).
    TestSecret,
}

/// [`verify_signer`] when the caller does not care which secret signed.
pub fn verify(
    keys: &SignatureKeys,
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    verify_signer(keys, signature, timestamp, body, now).map(drop)
}

/// base64(HMAC-SHA256(secret, timestamp ‖ body)), compared in constant time (`verify_slice`).
///
/// The timestamp must be ISO-8601 and within `tolerance` of `now` both ways; any missing, empty,
/// truncated or non-base64 signature is refused.
pub fn verify_signer(
    keys: &SignatureKeys,
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Signer, WebhookError> {
    let unauthorized = |m: &str| WebhookError::Unauthorized(m.to_string());
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("missing X-Zendesk-Webhook-Signature header"))?;
    let timestamp = timestamp
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("missing X-Zendesk-Webhook-Signature-Timestamp header"))?;
    let sent_at = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .ok_or_else(|| {
            unauthorized("X-Zendesk-Webhook-Signature-Timestamp is not an ISO-8601 time")
        })?;
    let skew = (now - sent_at.with_timezone(&Utc)).abs();
    let tolerance = chrono::Duration::from_std(keys.tolerance).unwrap_or(chrono::Duration::MAX);
    if skew > tolerance {
        return Err(unauthorized(
            "signature timestamp is outside the replay window (check the server clock)",
        ));
    }
    let mac = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| unauthorized("X-Zendesk-Webhook-Signature is not base64"))?;
    let matches = |secret: &SecretString| {
        let Ok(mut h) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            return false;
        };
        h.update(timestamp);
        h.update(body);
        h.verify_slice(&mac).is_ok()
    };
    if matches(&keys.secret) {
        Ok(Signer::Webhook)
    } else if keys.test_secret.as_ref().is_some_and(matches) {
        Ok(Signer::TestSecret)
    } else {
        Err(unauthorized(
            "signature does not match: check zendesk.webhook_secret against the webhook's signing secret",
        ))
    }
}

/// Parses a trigger body (`{"ticket_id": …, "requester_email": …}`) or an event-subscription
/// body (`{"type": "zen:event-type:ticket.created", "detail": {…}}`).
pub fn parse(body: &[u8]) -> Result<ParsedEvent, WebhookError> {
    let v = parse_json(body)?;
    match v.get("type").and_then(Value::as_str) {
        Some(t) if t.starts_with("zen:event-type:") => parse_event(&v, t),
        _ => parse_trigger(&v),
    }
}

/// Like [`parse`], but an event-subscription body whose type (`ticket.created`, …) is not in
/// `accepted` is `Ok(None)`: answered, not queued, whatever else it holds.
pub fn parse_accepted(
    body: &[u8],
    accepted: &[String],
) -> Result<Option<ParsedEvent>, WebhookError> {
    let v = parse_json(body)?;
    match v.get("type").and_then(Value::as_str) {
        Some(t) if t.starts_with("zen:event-type:") => {
            let kind = &t["zen:event-type:".len()..];
            if accepted.iter().any(|a| a == kind) {
                parse_event(&v, t).map(Some)
            } else {
                Ok(None)
            }
        }
        _ => parse_trigger(&v).map(Some),
    }
}

fn parse_trigger(v: &Value) -> Result<ParsedEvent, WebhookError> {
    let ticket_id = ticket_id(
        v,
        "ticket_id",
        "ticket_id",
        "ticket_id is missing: the trigger's JSON body must contain \"ticket_id\": \"{{ticket.id}}\"",
    )?;
    Ok(ParsedEvent {
        source: Source::Zendesk,
        ticket_id,
        event_type: "trigger".into(),
        requester: requester(v, Some("requester_email"), "requester_id", "")?,
        ticket_tags: field_tags(v, "tags")?,
        event_id: None,
        ticket_updated_at: field_stamp(v, "ticket_updated_at", "ticket_updated_at")?,
    })
}

fn parse_event(v: &Value, event_type: &str) -> Result<ParsedEvent, WebhookError> {
    let kind = &event_type["zen:event-type:".len()..];
    if !kind.starts_with("ticket.") || kind.len() > 100 || kind.chars().any(char::is_control) {
        return Err(WebhookError::BadRequest(format!(
            "event type {event_type:?} is not a ticket event: subscribe the webhook to zen:event-type:ticket.* events"
        )));
    }
    let detail = v
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| WebhookError::BadRequest("detail object is missing".into()))?;
    let ticket_id = ticket_id(
        detail,
        "id",
        "detail.id",
        "detail.id (the ticket id) is missing",
    )?;
    Ok(ParsedEvent {
        source: Source::Zendesk,
        ticket_id,
        event_type: kind.to_string(),
        requester: requester(detail, None, "requester_id", "detail.")?,
        ticket_tags: field_tags(detail, "tags")?,
        event_id: field_id(v, "id")?,
        ticket_updated_at: field_stamp(detail, "updated_at", "detail.updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerEmail, Requester, RequesterId};
    use proptest::prelude::*;
    use std::time::Duration;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn keys(secret: &str) -> SignatureKeys {
        SignatureKeys {
            secret: SecretString::from(secret.to_string()),
            test_secret: None,
            tolerance: Duration::from_secs(300),
        }
    }

    fn at(ts: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(ts)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn every_published_vector_verifies() {
        let vectors: Value =
            serde_json::from_slice(&fixture("zendesk-signature-vectors.json")).expect("json");
        let default_secret = vectors["secret"].as_str().expect("secret");
        let list = vectors["vectors"].as_array().expect("vectors");
        assert_eq!(list.len(), 3);
        for v in list {
            let body = match v.get("body_file").and_then(Value::as_str) {
                Some(f) => fixture(f),
                None => v["body_inline"]
                    .as_str()
                    .expect("inline")
                    .as_bytes()
                    .to_vec(),
            };
            let secret = v
                .get("secret_override")
                .and_then(Value::as_str)
                .unwrap_or(default_secret);
            let ts = v["timestamp"].as_str().expect("ts");
            let sig = v["signature"].as_str().expect("sig");
            let r = verify(
                &keys(secret),
                Some(sig.as_bytes()),
                Some(ts.as_bytes()),
                &body,
                at(ts),
            );
            assert!(r.is_ok(), "vector {v} failed: {r:?}");
            // The same vector a second past the window is refused.
            let late = at(ts) + chrono::Duration::seconds(301);
            let r = verify(
                &keys(secret),
                Some(sig.as_bytes()),
                Some(ts.as_bytes()),
                &body,
                late,
            );
            assert!(matches!(r, Err(WebhookError::Unauthorized(_))));
        }
    }

    #[test]
    fn missing_empty_truncated_and_garbage_signatures_are_refused() {
        let body = fixture("zendesk-trigger-body.json");
        let ts = "2024-05-08T13:09:42Z";
        let good = "FBMUiXk7TFQLGiIaB2I/khQPtbNhuLrwTDWCyshDsAo=";
        let k = keys("dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==");
        let now = at(ts);
        for sig in [
            None,
            Some(""),
            Some(&good[..20]),
            Some("not base64 !!"),
            Some("AAAA"),
        ] {
            let r = verify(&k, sig.map(str::as_bytes), Some(ts.as_bytes()), &body, now);
            assert!(
                matches!(r, Err(WebhookError::Unauthorized(_))),
                "{sig:?} accepted"
            );
        }
        for bad_ts in [
            None,
            Some(""),
            Some("yesterday"),
            Some("2024-05-08T13:09:43Z"),
        ] {
            let r = verify(
                &k,
                Some(good.as_bytes()),
                bad_ts.map(str::as_bytes),
                &body,
                now,
            );
            assert!(
                matches!(r, Err(WebhookError::Unauthorized(_))),
                "{bad_ts:?} accepted"
            );
        }
    }

    #[test]
    fn a_timestamp_from_the_future_is_refused_too() {
        let body = b"{}";
        let ts = "2030-01-01T00:10:00Z";
        let sig = sign("s3cret", ts, body);
        let r = verify(
            &keys("s3cret"),
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            body,
            at("2030-01-01T00:00:00Z"),
        );
        assert!(matches!(r, Err(WebhookError::Unauthorized(_))));
    }

    #[test]
    fn the_test_secret_only_passes_when_dangerously_allowed() {
        let body = fixture("zendesk-trigger-body.json");
        let ts = "2024-05-08T13:09:42Z";
        let sig = "FBMUiXk7TFQLGiIaB2I/khQPtbNhuLrwTDWCyshDsAo=";
        let mut k = keys("the-real-secret");
        assert!(verify(&k, Some(sig.as_bytes()), Some(ts.as_bytes()), &body, at(ts)).is_err());
        k.test_secret = Some(SecretString::from(
            crate::config::ZENDESK_TEST_SECRET.to_string(),
        ));
        assert!(verify(&k, Some(sig.as_bytes()), Some(ts.as_bytes()), &body, at(ts)).is_ok());
    }

    fn email(e: &str) -> Requester {
        Requester::Email(CustomerEmail::parse(e).expect("email"))
    }

    fn id(i: &str) -> Requester {
        Requester::Id(RequesterId::parse(i).expect("id"))
    }

    #[test]
    fn trigger_fixture_parses_with_normalised_email_and_split_tags() {
        let e = parse(&fixture("zendesk-trigger-body.json")).expect("parse");
        assert_eq!(e.ticket_id.get(), 35436);
        // The email wins over the id the body also carries: no look-up needed.
        assert_eq!(e.requester, email("jane.doe@example.com"));
        assert_eq!(e.ticket_tags, ["delivery_issue", "web"]);
        assert_eq!(e.event_type, "trigger");
    }

    #[test]
    fn event_subscription_fixture_parses() {
        let e = parse(&fixture("zendesk-event-ticket-created.json")).expect("parse");
        assert_eq!(e.ticket_id.get(), 35436);
        assert_eq!(e.requester, id("8447388090494"));
        assert_eq!(e.ticket_tags, ["delivery_issue"]);
        assert_eq!(e.event_type, "ticket.created");
        assert_eq!(
            e.event_id.as_deref(),
            Some("cbe4028c-7239-495d-b020-f22348516046")
        );
        assert_eq!(e.ticket_updated_at.as_deref(), Some("2024-05-08T13:09:40Z"));
    }

    #[test]
    fn a_trigger_may_carry_the_tickets_updated_time_and_a_malformed_one_is_refused_by_name() {
        let with = br#"{"ticket_id": "7", "requester_id": "1", "ticket_updated_at": "2024-05-08T13:09:40Z"}"#;
        let e = parse(with).expect("parse");
        assert_eq!(e.ticket_updated_at.as_deref(), Some("2024-05-08T13:09:40Z"));
        let without = parse(br#"{"ticket_id": "7", "requester_id": "1"}"#).expect("parse");
        assert_eq!(without.ticket_updated_at, None);
        let bad = br#"{"ticket_id": "7", "requester_id": "1", "ticket_updated_at": "yesterday"}"#;
        let e = parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("ticket_updated_at"), "{e}");
    }

    #[test]
    fn only_the_accepted_event_types_are_parsed_and_trigger_bodies_always_are() {
        let created = fixture("zendesk-event-ticket-created.json");
        let accepted = ["ticket.created".to_string()];
        assert!(matches!(parse_accepted(&created, &accepted), Ok(Some(_))));
        assert!(matches!(parse_accepted(&created, &[]), Ok(None)));
        // An ignored type is not parsed further: a body without a requester is still fine.
        let updated = br#"{"type": "zen:event-type:ticket.status_changed", "detail": {"id": "1"}}"#;
        assert!(matches!(parse_accepted(updated, &accepted), Ok(None)));
        let trigger = fixture("zendesk-trigger-body.json");
        assert!(matches!(parse_accepted(&trigger, &[]), Ok(Some(_))));
    }

    #[test]
    fn numeric_ids_array_tags_and_comma_tags_are_accepted() {
        let e =
            parse(br#"{"ticket_id": 12, "requester_id": 7, "tags": ["A", "b"]}"#).expect("parse");
        assert_eq!((e.ticket_id.get(), e.requester), (12, id("7")));
        assert_eq!(e.ticket_tags, ["a", "b"]);
        let e = parse(br#"{"ticket_id": "12", "requester_email": "x@y.z", "tags": "a, b,c"}"#)
            .expect("parse");
        assert_eq!(e.ticket_tags, ["a", "b", "c"]);
    }

    #[test]
    fn bodies_without_a_ticket_or_a_customer_are_bad_requests() {
        let cases: [&[u8]; 8] = [
            b"",
            b"not json",
            b"[1,2]",
            br#"{"requester_email": "a@b.c"}"#,
            br#"{"ticket_id": "{{ticket.id}}", "requester_email": "a@b.c"}"#,
            br#"{"ticket_id": "1"}"#,
            br#"{"ticket_id": "1", "requester_email": "not-an-email"}"#,
            br#"{"type": "zen:event-type:user.created", "detail": {"id": "1"}}"#,
        ];
        for body in cases {
            assert!(
                matches!(parse(body), Err(WebhookError::BadRequest(_))),
                "{} accepted",
                String::from_utf8_lossy(body)
            );
        }
    }

    proptest! {
        #[test]
        fn any_change_to_body_timestamp_or_signature_is_refused(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<usize>(),
            which in 0u8..3,
        ) {
            let ts = "2024-05-08T13:09:42Z";
            let sig = sign("secret", ts, &body);
            let k = keys("secret");
            prop_assert!(verify(&k, Some(sig.as_bytes()), Some(ts.as_bytes()), &body, at(ts)).is_ok());
            let (mut b, mut t, mut s) = (body.clone(), ts.as_bytes().to_vec(), sig.clone().into_bytes());
            match which {
                0 if !b.is_empty() => { let i = flip % b.len(); b[i] ^= 1; }
                0 => b.push(b'x'),
                1 => { let i = flip % t.len(); t[i] ^= 1; }
                _ => { let i = flip % s.len(); s[i] ^= 1; }
            }
            prop_assert!(verify(&k, Some(&s), Some(&t), &b, at(ts)).is_err());
        }

        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..500), sig in proptest::collection::vec(any::<u8>(), 0..60), ts in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse(&body);
            let _ = verify(&keys("k"), Some(&sig), Some(&ts), &body, Utc::now());
        }

        #[test]
        fn json_shaped_noise_never_panics(s in r#"\{("(ticket_id|requester_email|requester_id|tags|type|detail|id)": ?("[^"]{0,12}"|-?[0-9]{1,22}|null|\[\]|\{\}|true),? ?){0,5}\}"#) {
            let _ = parse(s.as_bytes());
        }
    }
}
