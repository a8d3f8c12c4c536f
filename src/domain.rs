//! Checked values from the edge of the program: once built, they are valid.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// A customer's email, normalised the way the order query receives it: trimmed, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerEmail(String);

impl CustomerEmail {
    pub fn parse(raw: &str) -> Result<CustomerEmail, String> {
        let e = raw.trim().to_lowercase();
        let valid = e.len() <= 254
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(e.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if valid {
            Ok(CustomerEmail(e))
        } else {
            Err(format!(
                "{:?} is not an email address",
                truncate(raw.trim(), 60)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A helpdesk tag. Zendesk stores tags lower-cased, without spaces; Gorgias tag names are free text,
/// but we keep the same rule so that one configuration works on both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Tag, String> {
        // Lower-case first: it can make text longer ("İ" is 2 bytes, "i̇" 3), and the checks
        // must hold for the tag as stored.
        let lowered = raw.trim().to_lowercase();
        let t = lowered.as_str();
        if t.is_empty() {
            return Err("a tag cannot be empty".into());
        }
        if t.len() > 80 {
            return Err(format!("tag {:?} is longer than 80 bytes", truncate(t, 40)));
        }
        if t.chars()
            .any(|c| c.is_whitespace() || c == ',' || c.is_control())
        {
            return Err(format!("tag {t:?} contains whitespace or a comma"));
        }
        Ok(Tag(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        let s = String::deserialize(d)?;
        Tag::parse(&s).map_err(serde::de::Error::custom)
    }
}

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
    fn emails_are_trimmed_and_lower_cased() {
        let e = CustomerEmail::parse("  Jane.Doe@Example.COM ").map(|e| e.0);
        assert_eq!(e.as_deref(), Ok("jane.doe@example.com"));
        for bad in [
            "",
            "jane",
            "@x",
            "jane@",
            "a b@c.d",
            "a@b@c",
            "{{ticket.requester.email}}",
        ] {
            assert!(CustomerEmail::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tags_are_lower_cased_and_must_be_single_words() {
        assert_eq!(
            Tag::parse(" VIP-Gold ").map(|t| t.0).as_deref(),
            Ok("vip-gold")
        );
        assert!(Tag::parse("two words").is_err());
        assert!(Tag::parse("a,b").is_err());
        assert!(Tag::parse("  ").is_err());
        // Found by the fuzzer: lower-casing made an 80-byte tag 120 bytes long.
        assert!(Tag::parse(&"İ".repeat(40)).is_err());
        let tag = Tag::parse(&format!("{}İ", "x".repeat(70))).expect("short enough");
        assert_eq!(Tag::parse(tag.as_str()), Ok(tag));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééééé", 2), "éé…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
