//! What agents see besides tags, per helpdesk: Zendesk custom fields (`zendesk.fields`) and the
//! internal note (`*.note_template`), rendered from the customer's numbers and the decision.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::{ColumnValue, CustomerEmail, CustomerStats, Tag};
use crate::policy::{Decision, Policy};

/// `zendesk.fields = { ltv = ID, tier = ID, orders = ID, disputes = ID }`: custom field ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldIds {
    /// A decimal field: the net LTV, exact, as text ("3000.00").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ltv: Option<u64>,
    /// A dropdown whose option values are the tier tags; cleared when no tier is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<u64>,
    /// An integer field: the number of orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<u64>,
    /// An integer field: the number of disputes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disputes: Option<u64>,
}

/// The fields and note one helpdesk writes with the tags.
#[derive(Debug, Clone, Default)]
pub struct TicketView {
    pub fields: FieldIds,
    /// `None`: no note.
    pub note_template: Option<String>,
}

/// Placeholders every template may use; any other `{name}` is a column of `orders.query`.
pub const NOTE_PLACEHOLDERS: [&str; 6] = ["email", "ltv", "orders", "disputes", "tags", "reasons"];

/// Checks a template's `{placeholders}`: closed braces around plain names (`{{`/`}}` are braces).
pub fn check_template(template: &str) -> Result<(), String> {
    render(template, |name| {
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Some(String::new())
        } else {
            None
        }
    })
    .map(drop)
}

impl TicketView {
    /// The custom field values for this decision (none when no field is configured).
    pub fn field_values(
        &self,
        policy: &Policy,
        stats: &CustomerStats,
        tags: &[Tag],
    ) -> Vec<(u64, Value)> {
        let f = &self.fields;
        let tier = policy
            .tiers()
            .iter()
            .find(|t| tags.contains(&t.tag))
            .map_or(Value::Null, |t| json!(t.tag));
        [
            (f.ltv, json!(stats.ltv.to_string())),
            (f.tier, tier),
            (f.orders, json!(stats.orders)),
            (f.disputes, json!(stats.disputes)),
        ]
        .into_iter()
        .filter_map(|(id, v)| id.map(|id| (id, v)))
        .collect()
    }

    /// The note for this decision, if this helpdesk writes one.
    pub fn note(
        &self,
        email: &CustomerEmail,
        stats: &CustomerStats,
        decision: &Decision,
    ) -> Option<String> {
        let template = self.note_template.as_deref()?;
        let tags: Vec<String> = decision.tags.iter().map(Tag::to_string).collect();
        let value = |name: &str| -> Option<String> {
            Some(match name {
                "email" => email.to_string(),
                "ltv" => stats.ltv.to_string(),
                "orders" => stats.orders.to_string(),
                "disputes" => stats.disputes.to_string(),
                "tags" if tags.is_empty() => "(none)".into(),
                "tags" => tags.join(", "),
                "reasons" => decision.reasons.join("; "),
                other => match stats.extra.get(&other.to_ascii_lowercase()) {
                    Some(ColumnValue::Number(d)) => d.to_string(),
                    Some(ColumnValue::Text(s)) => s.clone(),
                    Some(ColumnValue::Bool(b)) => b.to_string(),
                    Some(ColumnValue::Null) => "null".into(),
                    None => "n/a".into(),
                },
            })
        };
        render(template, value).ok()
    }
}

/// Replaces each `{name}` with `value(name)`; `{{` and `}}` are literal braces.
fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err("a `{` without its `}` (write `{{` for a brace)".into());
                }
                match value(name.trim()) {
                    Some(v) => out.push_str(&v),
                    None => return Err(format!("{{{name}}} is not a placeholder name")),
                }
            }
            '}' => return Err("a `}` without its `{` (write `}}` for a brace)".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::VipTier;
    use rust_decimal::Decimal;

    #[test]
    fn the_note_shows_the_numbers_the_tags_and_the_reasons() {
        let view = TicketView {
            note_template: Some(
                "LTV {ltv} over {orders} orders, {disputes} disputes, refunded {refunded} → {tags} ({reasons}) {{ok}}"
                    .into(),
            ),
            ..TicketView::default()
        };
        let stats = CustomerStats {
            ltv: "3000.10".parse().expect("decimal"),
            orders: 4,
            disputes: 0,
            extra: [(
                "refunded".to_string(),
                ColumnValue::Number(Decimal::new(31000, 2)),
            )]
            .into(),
        };
        let decision = Decision {
            tags: vec![Tag::parse("vip-gold").expect("tag")],
            reasons: vec!["3000.10 ≥ 2500 → vip-gold".into()],
        };
        let email = CustomerEmail::parse("a@b.c").expect("email");
        assert_eq!(
            view.note(&email, &stats, &decision).as_deref(),
            Some("LTV 3000.10 over 4 orders, 0 disputes, refunded 310.00 → vip-gold (3000.10 ≥ 2500 → vip-gold) {ok}")
        );
    }

    #[test]
    fn fields_carry_exact_ltv_the_tier_and_counts_and_only_the_configured_ones() {
        let tag = |s: &str| Tag::parse(s).expect("tag");
        let policy = Policy::new(
            vec![VipTier {
                tag: tag("vip"),
                min_ltv: Decimal::new(500, 0),
            }],
            None,
            true,
        );
        let view = TicketView {
            fields: FieldIds {
                ltv: Some(1),
                tier: Some(2),
                orders: Some(3),
                disputes: None,
            },
            note_template: None,
        };
        let stats = CustomerStats {
            ltv: "500.00".parse().expect("decimal"),
            orders: 2,
            ..CustomerStats::default()
        };
        assert_eq!(
            view.field_values(&policy, &stats, &[tag("vip")]),
            [(1, json!("500.00")), (2, json!("vip")), (3, json!(2))]
        );
        assert_eq!(view.field_values(&policy, &stats, &[])[1], (2, Value::Null));
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(check_template("LTV {ltv}, {{literal}}").is_ok());
        for bad in ["{ltv", "ltv}", "{}", "{a b}"] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }
}
