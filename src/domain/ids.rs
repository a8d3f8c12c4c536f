//! Identifiers: which helpdesk ([`Source`]), which ticket, which job, which requester.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::truncate;

/// Which helpdesk an event came from and where its tags go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Zendesk,
    Gorgias,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Zendesk => "zendesk",
            Source::Gorgias => "gorgias",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "zendesk" => Some(Source::Zendesk),
            "gorgias" => Some(Source::Gorgias),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A helpdesk ticket id: a positive integer (Zendesk and Gorgias both number tickets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId(u64);

impl TicketId {
    /// Accepts `123` or `"123"` (surrounding whitespace allowed), nothing else.
    pub fn parse(raw: &str) -> Result<TicketId, String> {
        positive_integer(raw, "ticket id").map(TicketId)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// `raw` as a positive integer (digits only, surrounding whitespace allowed); `what` names it in
/// the error.
fn positive_integer(raw: &str, what: &str) -> Result<u64, String> {
    let t = raw.trim();
    let refuse = || {
        format!(
            "{what} must be a positive integer, got {:?}",
            truncate(t, 40)
        )
    };
    // `u64::from_str` also takes a leading `+`: digits only, as documented.
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    match t.parse::<u64>() {
        Ok(0) | Err(_) => Err(refuse()),
        Ok(n) => Ok(n),
    }
}

/// A job's row id in the state DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type, Serialize)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct JobId(i64);

impl JobId {
    pub const fn new(id: i64) -> JobId {
        JobId(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A helpdesk user (Zendesk) or customer (Gorgias) id: a positive integer, as both number them.
/// Checked at ingest, so it goes into an API path as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequesterId(String);

impl RequesterId {
    /// Accepts `123` or `"123"` (surrounding whitespace allowed), nothing else.
    pub fn parse(raw: &str) -> Result<RequesterId, String> {
        positive_integer(raw, "requester id").map(|n| RequesterId(n.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequesterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_accept_digits_only() {
        assert_eq!(TicketId::parse(" 35436 ").map(TicketId::get), Ok(35436));
        assert!(TicketId::parse("0").is_err());
        assert!(TicketId::parse("-1").is_err());
        assert!(TicketId::parse("{{ticket.id}}").is_err());
        assert!(TicketId::parse("").is_err());
        assert!(TicketId::parse("1e3").is_err());
        assert!(TicketId::parse("+1").is_err(), "found by the fuzzer");
    }

    #[test]
    fn requester_ids_accept_positive_integers_only() {
        assert_eq!(
            RequesterId::parse(" 8447388090494 ")
                .map(|i| i.0)
                .as_deref(),
            Ok("8447388090494")
        );
        for bad in ["abc", "-7", "0", "../../x", "7/../../x", "", "+7", "1.5"] {
            let e = RequesterId::parse(bad).expect_err(bad);
            assert!(
                e.starts_with("requester id must be a positive integer"),
                "{e}"
            );
        }
    }
}
