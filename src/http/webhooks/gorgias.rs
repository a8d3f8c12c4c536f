//! Gorgias HTTP-integration requests: a shared token in a header, and the templated JSON body.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::fields::{field_tags_as_sent, parse_json, requester, ticket_id};
use super::{ParsedEvent, WebhookError};
use crate::domain::Source;

pub const TOKEN_HEADER: &str = "x-webhook-token";

/// Gorgias does not sign requests: the integration sends our shared secret in `X-Webhook-Token`.
/// Compared in constant time over SHA-256 digests, so neither content nor length leaks.
pub fn verify(expected: &SecretString, token: Option<&[u8]>) -> Result<(), WebhookError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| WebhookError::Unauthorized("missing X-Webhook-Token header".into()))?;
    let a = Sha256::digest(expected.expose_secret().as_bytes());
    let b = Sha256::digest(token);
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(WebhookError::Unauthorized(
            "X-Webhook-Token does not match gorgias.webhook_token".into(),
        ))
    }
}

/// `{"ticket_id": "{{ticket.id}}", "customer_email": "{{ticket.customer.email}}"}`, optionally with
/// `customer_id` and `tags`.
pub fn parse(body: &[u8]) -> Result<ParsedEvent, WebhookError> {
    let v = parse_json(body)?;
    let ticket_id = ticket_id(
        &v,
        "ticket_id",
        "ticket_id",
        "ticket_id is missing: the integration's body must contain \"ticket_id\": \"{{ticket.id}}\"",
    )?;
    Ok(ParsedEvent {
        source: Source::Gorgias,
        ticket_id,
        event_type: "http-integration".into(),
        requester: requester(&v, Some("customer_email"), "customer_id", "")?,
        ticket_tags: field_tags_as_sent(&v, "tags")?,
        event_id: None,
        ticket_updated_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerEmail, Requester};
    use proptest::prelude::*;

    #[test]
    fn fixture_parses() {
        let path = format!(
            "{}/tests/fixtures/gorgias-http-integration-body.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).expect("fixture");
        let e = parse(&body).expect("parse");
        assert_eq!(e.ticket_id.get(), 4821);
        assert_eq!(
            e.requester,
            Requester::Email(CustomerEmail::parse("jane.doe@example.com").expect("email"))
        );
        assert_eq!(e.ticket_tags, ["refund", "shipping"]);
    }

    #[test]
    fn the_token_must_match_exactly() {
        let secret = SecretString::from("tok-abc".to_string());
        assert!(verify(&secret, Some(b"tok-abc")).is_ok());
        for bad in [
            None,
            Some(&b""[..]),
            Some(b"tok-ab"),
            Some(b"tok-abcd"),
            Some(b"TOK-ABC"),
        ] {
            assert!(matches!(
                verify(&secret, bad),
                Err(WebhookError::Unauthorized(_))
            ));
        }
    }

    #[test]
    fn missing_ticket_or_customer_is_a_bad_request() {
        for body in [
            &br#"{"customer_email": "a@b.c"}"#[..],
            br#"{"ticket_id": 3}"#,
            b"{",
        ] {
            assert!(matches!(parse(body), Err(WebhookError::BadRequest(_))));
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..500), tok in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse(&body);
            let _ = verify(&SecretString::from("x".to_string()), Some(&tok));
        }
    }
}
