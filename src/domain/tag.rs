//! A helpdesk tag, checked once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{truncate, Source};

/// A helpdesk tag. Zendesk stores tags lower-cased, without spaces; Gorgias tag names are free text
/// and case-sensitive, but we keep the no-space rule so that one configuration works on both.
///
/// The tag compares, hashes, prints and serializes as its lower-cased (Zendesk) form; the text
/// as configured is kept for vendors that keep case ([`Tag::for_vendor`], [`Tag::is_on`]).
#[derive(Debug, Clone)]
pub struct Tag(String, String);

impl Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl PartialEq for Tag {
    fn eq(&self, other: &Tag) -> bool {
        self.0 == other.0
    }
}

impl Eq for Tag {}

impl std::hash::Hash for Tag {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

impl PartialOrd for Tag {
    fn partial_cmp(&self, other: &Tag) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tag {
    fn cmp(&self, other: &Tag) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

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
        Ok(Tag(lowered.clone(), raw.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag as written in the configuration (trimmed), case kept.
    pub fn as_configured(&self) -> &str {
        &self.1
    }

    /// The name to write to `vendor`: Zendesk lower-cases tags itself, Gorgias keeps case, so it
    /// gets the tag exactly as configured.
    pub fn for_vendor(&self, vendor: Source) -> &str {
        match vendor {
            Source::Zendesk => self.as_str(),
            Source::Gorgias => self.as_configured(),
        }
    }

    /// Whether `vendor_tag`, a tag the ticket carries on `vendor`, is this tag by that vendor's
    /// rules: case-insensitive on Zendesk, exact on Gorgias.
    pub fn is_on(&self, vendor_tag: &str, vendor: Source) -> bool {
        match vendor {
            Source::Zendesk => vendor_tag.to_lowercase() == self.0,
            Source::Gorgias => vendor_tag == self.1,
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        let s = String::deserialize(d)?;
        Tag::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_configured_case_is_kept_for_gorgias_and_compared_per_vendor() {
        let tag = Tag::parse(" VIP-Gold ").expect("tag");
        assert_eq!(tag.for_vendor(Source::Zendesk), "vip-gold");
        assert_eq!(tag.for_vendor(Source::Gorgias), "VIP-Gold");
        assert!(tag.is_on("vip-gold", Source::Zendesk));
        assert!(tag.is_on("VIP-GOLD", Source::Zendesk));
        assert!(tag.is_on("VIP-Gold", Source::Gorgias));
        assert!(!tag.is_on("vip-gold", Source::Gorgias));
        assert_eq!(serde_json::json!([tag]), serde_json::json!(["vip-gold"]));
    }
}
