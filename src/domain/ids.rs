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
        f.write_str(self.as_str())
    }
}

/// A helpdesk ticket id: a positive integer (Zendesk and Gorgias both number tickets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId(u64);

impl TicketId {
    /// Accepts `123` or `"123"` (surrounding whitespace allowed), nothing else.
    pub fn parse(raw: &str) -> Result<TicketId, String> {
        let t = raw.trim();
        // `u64::from_str` also takes a leading `+`: digits only, as documented.
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "ticket id must be a positive integer, got {:?}",
                truncate(t, 40)
            ));
        }
        match t.parse::<u64>() {
            Ok(0) => Err("ticket id must be a positive integer, got 0".into()),
            Ok(n) => Ok(TicketId(n)),
            Err(_) => Err(format!(
                "ticket id must be a positive integer, got {:?}",
                truncate(t, 40)
            )),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
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
        write!(f, "{}", self.0)
    }
}

/// A helpdesk user (Zendesk) or customer (Gorgias) id, as sent in a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequesterId(String);

impl RequesterId {
    pub fn parse(raw: &str) -> Result<RequesterId, String> {
        let t = raw.trim();
        if t.is_empty() || t.len() > 128 || t.chars().any(char::is_control) {
            return Err(format!("{:?} is not a requester id", truncate(t, 40)));
        }
        Ok(RequesterId(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequesterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
}
