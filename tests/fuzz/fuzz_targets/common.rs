//! Checks shared by the webhook body targets: what any `ParsedEvent` must satisfy, whatever the bytes.

use ltv_tagger::domain::{CustomerEmail, Requester, RequesterId, Source, TicketId};
use ltv_tagger::http::webhooks::{ParsedEvent, WebhookError};

/// Bodies that are not a JSON object are refused, every refusal is a 400, and an accepted body
/// yields only checked values: a positive ticket id, a customer, normalised tags and ids.
pub fn check(body: &[u8], source: Source, result: &Result<ParsedEvent, WebhookError>) {
    let is_object = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object());
    let e = match result {
        Err(WebhookError::BadRequest(_)) => return,
        Err(other) => panic!("a body was refused with something other than a 400: {other:?}"),
        Ok(e) => e,
    };
    assert!(
        is_object,
        "accepted a body that is not a JSON object: {e:?}"
    );
    assert_eq!(e.source, source);
    assert!(e.ticket_id.get() > 0);
    assert_eq!(TicketId::parse(&e.ticket_id.to_string()), Ok(e.ticket_id));
    // The requester is always named (the type says so); it is checked again as parsed.
    match &e.requester {
        Requester::Email(email) => {
            assert_eq!(CustomerEmail::parse(email.as_str()).as_ref(), Ok(email))
        }
        Requester::Id(id) => assert_eq!(RequesterId::parse(id.as_str()).as_ref(), Ok(id)),
    }
    if let Some(id) = &e.event_id {
        assert!(
            !id.is_empty() && id.trim() == id && id.len() <= 128,
            "odd id {id:?}"
        );
    }
    for tag in &e.ticket_tags {
        assert!(!tag.is_empty(), "empty tag in {e:?}");
        assert!(
            !tag.chars()
                .any(|c| c.is_whitespace() || c == ',' || c.is_control()),
            "tag {tag:?} holds whitespace, a comma or a control character"
        );
        // Zendesk lower-cases tags itself; Gorgias tag names are case-sensitive and kept as sent.
        if source == Source::Zendesk {
            assert_eq!(*tag, tag.to_lowercase(), "tag {tag:?} is not lower-cased");
        }
    }
}
