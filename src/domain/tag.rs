//! A helpdesk tag, checked once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::truncate;

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
}
