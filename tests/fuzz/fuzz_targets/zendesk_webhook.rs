//! `http::webhooks::zendesk::parse` on arbitrary bytes: trigger bodies and event-subscription bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ltv_tagger::domain::{Requester, Source};
use ltv_tagger::http::webhooks::zendesk;

mod common;

fuzz_target!(|body: &[u8]| {
    let result = zendesk::parse(body);
    common::check(body, Source::Zendesk, &result);
    if let Ok(e) = result {
        match e.event_type.as_str() {
            "trigger" => assert_eq!(e.event_id, None),
            t => {
                assert!(t.starts_with("ticket."), "event type {t:?} accepted");
                // Event subscriptions carry ids only.
                assert!(matches!(e.requester, Requester::Id(_)), "{e:?}");
            }
        }
    }
});
