//! The customer: a normalised email, who asked ([`Requester`]), what they are worth
//! ([`CustomerStats`]).

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;

use super::{truncate, RequesterId};

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
        f.pad(&self.0)
    }
}

/// Who opened the ticket, as the event named them: an email when it carried one, else the
/// helpdesk's id for them (the worker asks the helpdesk for the email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    Email(CustomerEmail),
    Id(RequesterId),
}

/// What the order database says about one customer; an unknown customer counts as the default
/// (LTV 0, no orders, no disputes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerStats {
    /// Lifetime value net of refunds, exact.
    pub ltv: Decimal,
    pub orders: i64,
    pub disputes: i64,
    /// The query's other columns, by lower-cased name, for `policy.rules`.
    pub extra: BTreeMap<String, ColumnValue>,
}

/// One extra column of the order query's row, decoded exactly (numbers as decimals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnValue {
    Number(Decimal),
    Text(String),
    Bool(bool),
    Null,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
