//! The newtypes at the edge (`domain::{TicketId, CustomerEmail, Tag}::parse`) on arbitrary text,
//! each checked against its documented contract and for a stable round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ltv_tagger::domain::{CustomerEmail, Tag, TicketId};

fuzz_target!(|raw: &str| {
    // "Accepts `123` or `"123"` (surrounding whitespace allowed), nothing else."
    if let Ok(id) = TicketId::parse(raw) {
        let t = raw.trim();
        assert!(
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()),
            "ticket id {raw:?} accepted as {id}: not digits"
        );
        assert!(id.get() > 0);
        assert_eq!(TicketId::parse(&id.to_string()), Ok(id));
    }

    // "Normalised the way the order query receives it: trimmed, lower-cased."
    if let Ok(email) = CustomerEmail::parse(raw) {
        let e = email.as_str();
        assert_eq!(e, e.trim());
        assert_eq!(e, e.to_lowercase());
        assert!(e.len() <= 254, "email of {} bytes accepted", e.len());
        assert!(!e.chars().any(|c| c.is_whitespace() || c.is_control()));
        assert!(matches!(e.split_once('@'),
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@')));
        assert_eq!(CustomerEmail::parse(e).as_ref(), Ok(&email));
    }

    // "Lower-cased, without spaces"; at most 80 bytes; and `Deserialize` goes through `parse`,
    // so whatever a Tag serialises to must deserialise to the same Tag.
    if let Ok(tag) = Tag::parse(raw) {
        let t = tag.as_str();
        assert!(!t.is_empty());
        assert_eq!(t, t.to_lowercase());
        assert!(!t
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c.is_control()));
        assert!(
            t.len() <= 80,
            "Tag::parse({raw:?}) ({} bytes) returned a tag of {} bytes",
            raw.trim().len(),
            t.len()
        );
        assert_eq!(Tag::parse(t).as_ref(), Ok(&tag));
        let json = serde_json::to_string(&tag).expect("a tag serialises");
        assert_eq!(serde_json::from_str::<Tag>(&json).ok().as_ref(), Some(&tag));
    }
});
