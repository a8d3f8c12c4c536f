//! Zendesk Update Ticket (`PUT /api/v2/tickets/{id}`): tags to add and remove, custom fields and
//! a private comment in one call, paced under that endpoint's own limit as well as the plan's.
//! The tag half of its body is also `update_many`'s (`zendesk_bulk.rs`).

use serde_json::{json, Map, Value};

use super::zendesk_safe_update::add_stamp;
use super::TicketUpdate;
use crate::domain::Tag;

/// Update Ticket's own limit: 100 requests per minute per account (besides the plan's limit).
pub const UPDATE_TICKET_PER_MINUTE: u32 = 100;

/// `{"ticket": {"additional_tags", "remove_tags", "custom_fields", "comment"}}`, each key only
/// when it has something to say, with `safe_update`/`updated_stamp` when the stamp is known. The
/// comment is always private (`public: false`).
pub fn update_ticket_body(update: &TicketUpdate) -> Value {
    let mut ticket = tag_changes(&update.add, &update.remove);
    if !update.fields.is_empty() {
        let fields: Vec<Value> = update
            .fields
            .iter()
            .map(|(id, value)| json!({ "id": id, "value": value }))
            .collect();
        ticket.insert("custom_fields".into(), Value::Array(fields));
    }
    if let Some(note) = &update.note {
        ticket.insert("comment".into(), json!({ "body": note, "public": false }));
    }
    add_stamp(&mut ticket, update.stamp.as_deref());
    json!({ "ticket": ticket })
}

/// The tag half of a ticket body, as Update Ticket and `update_many` both take it:
/// `additional_tags` and `remove_tags`, each only when non-empty.
pub(super) fn tag_changes(add: &[Tag], remove: &[Tag]) -> Map<String, Value> {
    let mut ticket = Map::new();
    if !add.is_empty() {
        ticket.insert("additional_tags".into(), json!(add));
    }
    if !remove.is_empty() {
        ticket.insert("remove_tags".into(), json!(remove));
    }
    ticket
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_body_carries_tags_fields_and_a_private_comment_and_nothing_empty() {
        let tag = |s: &str| Tag::parse(s).expect("tag");
        let update = TicketUpdate {
            add: vec![tag("vip-gold")],
            remove: vec![tag("vip")],
            fields: vec![(360001, json!("3000.00")), (360003, json!(4))],
            note: Some("LTV 3000.00".into()),
            stamp: None,
        };
        assert_eq!(
            update_ticket_body(&update),
            json!({ "ticket": {
                "additional_tags": ["vip-gold"],
                "remove_tags": ["vip"],
                "custom_fields": [ { "id": 360001, "value": "3000.00" }, { "id": 360003, "value": 4 } ],
                "comment": { "body": "LTV 3000.00", "public": false },
            }})
        );
        let only_remove = TicketUpdate {
            remove: vec![tag("vip")],
            ..TicketUpdate::default()
        };
        assert_eq!(
            update_ticket_body(&only_remove),
            json!({ "ticket": { "remove_tags": ["vip"] } })
        );
        let stamped = TicketUpdate {
            stamp: Some("2024-05-08T13:09:40Z".into()),
            ..only_remove
        };
        assert_eq!(
            update_ticket_body(&stamped),
            json!({ "ticket": {
                "remove_tags": ["vip"],
                "safe_update": true,
                "updated_stamp": "2024-05-08T13:09:40Z",
            }})
        );
    }
}
