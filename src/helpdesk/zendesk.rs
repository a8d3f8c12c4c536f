//! Zendesk Support API: read a requester's email, add tags to a ticket, update a ticket (tags,
//! fields, private comment: the body is built in `zendesk_update.rs`); bulk tag writes are in
//! `zendesk_bulk.rs`.

use async_trait::async_trait;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use super::zendesk_bulk::{BulkSlots, BulkWrites};
use super::zendesk_rate_headers::{account_remaining, endpoint_remaining};
use super::zendesk_safe_update::{add_stamp, fresh_ticket};
use super::zendesk_update::{update_ticket_body, UPDATE_TICKET_PER_MINUTE};
use super::{
    basic_auth, email_at, ApiClient, FreshTicket, Helpdesk, HelpdeskError, TicketUpdate, TicketView,
};
use crate::config::ZendeskSettings;
use crate::domain::{RequesterId, Source, Tag, TicketId};
use crate::metrics::Metrics;
use crate::rate_budget::RateBudget;
use crate::state::StateStore;

pub struct ZendeskClient {
    api: ApiClient,
    /// The fields and note written with the tags.
    view: TicketView,
    /// Update Ticket's own budget (100 per minute per account), drawn before the plan's.
    update_budget: RateBudget,
    /// `update_many`: the backlog left to single writes, and the account's job slots.
    bulk: BulkSlots,
}

impl ZendeskClient {
    pub fn new(
        settings: &ZendeskSettings,
        store: StateStore,
        metrics: Metrics,
        max_retry_after: std::time::Duration,
    ) -> anyhow::Result<ZendeskClient> {
        // Basic base64("{email}/token:{api_token}")
        let authorization = basic_auth(&format!(
            "{}/token:{}",
            settings.email,
            settings.api_token.expose_secret()
        ));
        let update_budget = RateBudget::zendesk(
            store.clone(),
            format!("zendesk-update-ticket:{}", settings.base_url),
            UPDATE_TICKET_PER_MINUTE,
        );
        let bulk = BulkSlots::new(settings.requests_per_minute, settings.bulk_after);
        let budget = RateBudget::zendesk(
            store,
            format!("zendesk:{}", settings.base_url),
            settings.requests_per_minute,
        );
        Ok(ZendeskClient {
            api: ApiClient::new(
                Source::Zendesk,
                &settings.base_url,
                authorization,
                settings.request_timeout,
                budget,
                metrics,
                account_remaining,
            )?
            .with_max_retry_after(max_retry_after),
            view: settings.view.clone(),
            update_budget,
            bulk,
        })
    }

    /// The API client itself, for calls beyond the worker's (`setup`'s admin calls).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    pub(super) fn bulk_slots(&self) -> &BulkSlots {
        &self.bulk
    }

    /// `PUT /api/v2/tickets/{id}/tags`, a safe update when `stamp` is known (409 if stale).
    async fn add_tags_stamped(
        &self,
        ticket: TicketId,
        tags: &[Tag],
        stamp: Option<&str>,
    ) -> Result<(), HelpdeskError> {
        let mut body = serde_json::Map::new();
        body.insert("tags".into(), json!(tags));
        add_stamp(&mut body, stamp);
        self.api
            .send(
                Method::PUT,
                &format!("/api/v2/tickets/{ticket}/tags"),
                Some(&serde_json::Value::Object(body)),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Helpdesk for ZendeskClient {
    fn view(&self) -> Option<&TicketView> {
        Some(&self.view)
    }

    fn bulk(&self) -> Option<&dyn BulkWrites> {
        Some(self)
    }

    /// `GET /api/v2/users/{id}` → `user.email` (None when the user has no email).
    async fn requester_email(&self, id: &RequesterId) -> Result<Option<String>, HelpdeskError> {
        let v = self
            .api
            .send(Method::GET, &format!("/api/v2/users/{id}"), None)
            .await?;
        Ok(email_at(&v, "/user/email"))
    }

    /// `PUT /api/v2/tickets/{id}/tags` adds tags and keeps the others (`POST` would replace them
    /// all: never used).
    async fn add_tags(&self, ticket: TicketId, tags: &[Tag]) -> Result<(), HelpdeskError> {
        self.add_tags_stamped(ticket, tags, None).await
    }

    /// `GET /api/v2/tickets/{id}` → `ticket.tags`, `ticket.updated_at`.
    async fn fresh_ticket(&self, ticket: TicketId) -> Result<Option<FreshTicket>, HelpdeskError> {
        let v = self
            .api
            .send(Method::GET, &format!("/api/v2/tickets/{ticket}"), None)
            .await?;
        Ok(Some(fresh_ticket(&v)))
    }

    /// Adding only: the tags call. Anything more (stale tags to remove, fields, a note): one
    /// `PUT /api/v2/tickets/{id}` carrying it all. Either is a safe update when the stamp is known.
    async fn write(&self, ticket: TicketId, update: &TicketUpdate) -> Result<(), HelpdeskError> {
        if update.only_adds_tags() {
            return self
                .add_tags_stamped(ticket, &update.add, update.stamp.as_deref())
                .await;
        }
        self.update_budget
            .acquire()
            .await
            .map_err(|e| HelpdeskError::Unavailable(format!("rate budget: state DB: {e}")))?;
        self.api
            .send_capping(
                Method::PUT,
                &format!("/api/v2/tickets/{ticket}"),
                Some(&update_ticket_body(update)),
                &self.update_budget,
                endpoint_remaining,
            )
            .await?;
        Ok(())
    }
}
