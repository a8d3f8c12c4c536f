//! `orders::bind_email_placeholders` (the configured order query, rewritten for the driver) on
//! arbitrary text for each backend. The first input byte picks the backend.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ltv_tagger::orders::{bind_email_placeholders, Backend, OrdersConfigError};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(rest) else {
        return;
    };
    let (backend, placeholder) = match pick % 3 {
        0 => (Backend::Postgres, "$1"),
        1 => (Backend::MySql, "?"),
        _ => (Backend::Sqlite, "?1"),
    };
    let (sql, binds) = match bind_email_placeholders(query, backend) {
        Err(OrdersConfigError::NoEmailPlaceholder) => return,
        Err(other) => panic!("unexpected error {other}"),
        Ok(ok) => ok,
    };
    // Each `:email` (6 bytes) became the placeholder; nothing else changed length.
    let shrink = query.len() - sql.len();
    let per = ":email".len() - placeholder.len();
    assert_eq!(shrink % per, 0, "{query:?} became {sql:?}");
    let replaced = shrink / per;
    assert!(replaced >= 1 && query.contains(":email"));
    let expected_binds = if backend == Backend::MySql {
        replaced
    } else {
        1
    };
    assert_eq!(binds, expected_binds, "{query:?} became {sql:?}");
    assert!(sql.matches(placeholder).count() >= replaced);
    // Only placeholders were touched.
    if !query.contains(placeholder) {
        assert_eq!(sql.replace(placeholder, ":email"), query);
    }
    // The rewrite is complete: nothing in the result is still a placeholder.
    assert!(
        matches!(
            bind_email_placeholders(&sql, backend),
            Err(OrdersConfigError::NoEmailPlaceholder)
        ),
        "{query:?} became {sql:?}, which still holds a placeholder"
    );
});
