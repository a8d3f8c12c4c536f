//! What one write to a ticket carries: the tags to add, the service's own stale tags to remove,
//! custom field values and a private note.

use serde_json::Value;

use crate::domain::Tag;

/// One write to one ticket; the client sends it in as few calls as its API allows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketUpdate {
    pub add: Vec<Tag>,
    /// Only tags of the policy (never a foreign tag).
    pub remove: Vec<Tag>,
    /// Zendesk custom fields: `(field id, value)`.
    pub fields: Vec<(u64, Value)>,
    /// A private note (Zendesk private comment, Gorgias internal note); never public.
    pub note: Option<String>,
    /// The ticket's `updated_at` the tags were decided on: sent as `updated_stamp` with
    /// `safe_update` (Zendesk), so a write over a concurrent change answers 409 instead of
    /// losing it. `None`: a plain write.
    pub stamp: Option<String>,
}

impl TicketUpdate {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.fields.is_empty()
            && self.note.is_none()
    }

    /// Tags to add and remove, nothing else (no fields, no note): a bulk write can carry it.
    pub fn tags_only(&self) -> bool {
        self.fields.is_empty() && self.note.is_none()
    }

    /// Only tags to add: the cheapest call of every helpdesk.
    pub fn only_adds_tags(&self) -> bool {
        self.remove.is_empty() && self.fields.is_empty() && self.note.is_none()
    }
}
