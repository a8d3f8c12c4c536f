//! `webhooks::gorgias::parse` on arbitrary bytes (the HTTP-integration body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ltv_tagger::domain::Source;
use ltv_tagger::http::webhooks::gorgias;

mod common;

fuzz_target!(|body: &[u8]| {
    let result = gorgias::parse(body);
    common::check(body, Source::Gorgias, &result);
    if let Ok(e) = result {
        assert_eq!(e.event_type, "http-integration");
        assert_eq!(e.event_id, None);
    }
});
