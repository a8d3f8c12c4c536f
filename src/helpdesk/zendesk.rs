//! Zendesk Support API: read a requester's email, add tags to a ticket.

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use super::api::numeric_id;
use super::{basic_auth, email_at, ApiClient, Helpdesk, HelpdeskError};
use crate::config::ZendeskSettings;
use crate::domain::{RequesterId, Source, Tag, TicketId};
use crate::metrics::Metrics;
use crate::rate_budget::RateBudget;
use crate::state::StateStore;

pub struct ZendeskClient {
    api: ApiClient,
}

/// `X-Rate-Limit-Remaining: 123`
fn remaining(h: &HeaderMap) -> Option<f64> {
    h.get("x-rate-limit-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl ZendeskClient {
    pub fn new(
        settings: &ZendeskSettings,
        store: StateStore,
        metrics: Metrics,
    ) -> anyhow::Result<ZendeskClient> {
        // Basic base64("{email}/token:{api_token}")
        let authorization = basic_auth(&format!(
            "{}/token:{}",
            settings.email,
            settings.api_token.expose_secret()
        ));
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
                remaining,
            )?,
        })
    }

    /// The API client itself, for calls beyond the worker's (`setup`'s admin calls).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }
}

#[async_trait]
impl Helpdesk for ZendeskClient {
    /// `GET /api/v2/users/{id}` → `user.email` (None when the user has no email).
    async fn requester_email(&self, id: &RequesterId) -> Result<Option<String>, HelpdeskError> {
        let id = numeric_id(id.as_str(), "Zendesk user")?;
        let v = self
            .api
            .send(Method::GET, &format!("/api/v2/users/{id}"), None)
            .await?;
        Ok(email_at(&v, "/user/email"))
    }

    /// `PUT /api/v2/tickets/{id}/tags` adds tags and keeps the others (`POST` would replace them
    /// all: never used).
    async fn add_tags(&self, ticket: TicketId, tags: &[Tag]) -> Result<(), HelpdeskError> {
        self.api
            .send(
                Method::PUT,
                &format!("/api/v2/tickets/{ticket}/tags"),
                Some(&json!({ "tags": tags })),
            )
            .await?;
        Ok(())
    }
}
