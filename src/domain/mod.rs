//! Checked values from the edge of the program: once built, they are valid.

mod customer;
mod ids;
mod outcome;
mod tag;

pub use customer::{ColumnValue, CustomerEmail, CustomerStats, Requester};
pub use ids::{JobId, RequesterId, Source, TicketId};
pub use outcome::{JobState, Outcome};
pub use tag::Tag;

/// Shortens untrusted text before it goes into an error message.
pub fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééééé", 2), "éé…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
