//! Helpdesk REST clients, looked up by [`Source`] in one registry ([`Helpdesks`]).
//!
//! `api.rs` sends every call (rate budget, status → [`HelpdeskError`], `Retry-After`, metrics);
//! `zendesk.rs` and `gorgias.rs` hold only each vendor's endpoints and auth; `zendesk_bulk.rs`
//! Zendesk's bulk tag writes (`update_many` and its job status).

mod answer;
mod api;
mod error;
pub mod gorgias;
mod ticket_view;
mod update;
pub mod zendesk;
mod zendesk_bulk;
mod zendesk_rate_headers;
mod zendesk_safe_update;
mod zendesk_update;

use std::sync::Arc;

use async_trait::async_trait;

pub use answer::MAX_ANSWER_BYTES;
pub use api::{basic_auth, email_at, ApiClient};
pub use error::HelpdeskError;
pub use gorgias::GorgiasClient;
pub use ticket_view::{check_template, FieldIds, TicketView, NOTE_PLACEHOLDERS};
pub use update::TicketUpdate;
pub use zendesk::ZendeskClient;
pub use zendesk_bulk::{
    BulkJob, BulkState, BulkStatus, BulkWrites, TicketFailure, MAX_BULK_JOBS, MAX_BULK_TICKETS,
};
pub use zendesk_safe_update::FreshTicket;

use crate::config::Settings;
use crate::domain::{RequesterId, Source, Tag, TicketId};
use crate::metrics::Metrics;
use crate::state::StateStore;

/// What the worker asks of a helpdesk.
#[async_trait]
pub trait Helpdesk: Send + Sync {
    /// The email of the ticket's requester, from the id the event named (`None`: they have none).
    async fn requester_email(&self, id: &RequesterId) -> Result<Option<String>, HelpdeskError>;

    /// Adds `tags` to the ticket, keeping the tags it has.
    async fn add_tags(&self, ticket: TicketId, tags: &[Tag]) -> Result<(), HelpdeskError>;

    /// Carries out `update` (tags to add and remove, fields, note). Clients that can only add
    /// tags refuse anything more.
    async fn write(&self, ticket: TicketId, update: &TicketUpdate) -> Result<(), HelpdeskError> {
        if update.only_adds_tags() {
            return self.add_tags(ticket, &update.add).await;
        }
        Err(HelpdeskError::Rejected {
            status: 501,
            reason: "this helpdesk client can only add tags".into(),
        })
    }

    /// The ticket's tags as the helpdesk has them now, for a helpdesk whose events do not carry
    /// them (`None`: trust the event's tags).
    async fn current_tags(&self, _ticket: TicketId) -> Result<Option<Vec<String>>, HelpdeskError> {
        Ok(None)
    }

    /// The ticket's tags and `updated_at` as the helpdesk has them now, to retry a safe update
    /// that met a concurrent change (`None`: this helpdesk has no safe updates).
    async fn fresh_ticket(&self, _ticket: TicketId) -> Result<Option<FreshTicket>, HelpdeskError> {
        Ok(None)
    }

    /// The custom fields and note this helpdesk writes with the tags (`None`: tags only).
    fn view(&self) -> Option<&TicketView> {
        None
    }

    /// Bulk tag writes (`None`, the default: this helpdesk writes one ticket per call).
    fn bulk(&self) -> Option<&dyn BulkWrites> {
        None
    }
}

/// The configured helpdesks, by source.
#[derive(Clone, Default)]
pub struct Helpdesks {
    zendesk: Option<Arc<dyn Helpdesk>>,
    gorgias: Option<Arc<dyn Helpdesk>>,
}

impl Helpdesks {
    /// A client for each helpdesk configured in `settings`.
    pub fn from_settings(
        settings: &Settings,
        store: &StateStore,
        metrics: &Metrics,
    ) -> anyhow::Result<Helpdesks> {
        let mut helpdesks = Helpdesks::default();
        let max_retry_after = settings.worker.max_retry_after;
        if let Some(z) = &settings.zendesk {
            let client = ZendeskClient::new(z, store.clone(), metrics.clone(), max_retry_after)?;
            helpdesks = helpdesks.with(Source::Zendesk, Arc::new(client));
        }
        if let Some(g) = &settings.gorgias {
            let client = GorgiasClient::new(g, store.clone(), metrics.clone(), max_retry_after)?;
            helpdesks = helpdesks.with(Source::Gorgias, Arc::new(client));
        }
        Ok(helpdesks)
    }

    /// Serves `source` with `client` (tests plug their own in here).
    pub fn with(mut self, source: Source, client: Arc<dyn Helpdesk>) -> Helpdesks {
        *self.slot(source) = Some(client);
        self
    }

    /// The client for `source`, if that helpdesk is configured.
    pub fn get(&self, source: Source) -> Option<&dyn Helpdesk> {
        match source {
            Source::Zendesk => self.zendesk.as_deref(),
            Source::Gorgias => self.gorgias.as_deref(),
        }
    }

    fn slot(&mut self, source: Source) -> &mut Option<Arc<dyn Helpdesk>> {
        match source {
            Source::Zendesk => &mut self.zendesk,
            Source::Gorgias => &mut self.gorgias,
        }
    }
}
