//! Gorgias REST API: read a customer's email and a ticket's tags, add and remove tags, write an
//! internal note.

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{basic_auth, email_at, ApiClient, Helpdesk, HelpdeskError, TicketUpdate, TicketView};
use crate::config::GorgiasSettings;
use crate::domain::{RequesterId, Source, Tag, TicketId};
use crate::metrics::Metrics;
use crate::rate_budget::RateBudget;
use crate::state::StateStore;

pub struct GorgiasClient {
    api: ApiClient,
    /// The fields and note written with the tags.
    view: TicketView,
    /// The API user's email: the sender of internal notes.
    email: String,
}

/// `X-Gorgias-Account-Api-Call-Limit: 10/40` (used/capacity) → 30 calls left.
fn remaining(h: &HeaderMap) -> Option<f64> {
    let v = h.get("x-gorgias-account-api-call-limit")?.to_str().ok()?;
    let (used, cap) = v.trim().split_once('/')?;
    let (used, cap): (f64, f64) = (used.trim().parse().ok()?, cap.trim().parse().ok()?);
    Some((cap - used).max(0.0))
}

impl GorgiasClient {
    pub fn new(
        settings: &GorgiasSettings,
        store: StateStore,
        metrics: Metrics,
        max_retry_after: std::time::Duration,
    ) -> anyhow::Result<GorgiasClient> {
        // Basic base64("{email}:{api_key}")
        let authorization = basic_auth(&format!(
            "{}:{}",
            settings.email,
            settings.api_key.expose_secret()
        ));
        let budget = RateBudget::gorgias(
            store,
            format!("gorgias:{}", settings.base_url),
            settings.requests_per_window,
            settings.window,
        );
        Ok(GorgiasClient {
            api: ApiClient::new(
                Source::Gorgias,
                &settings.base_url,
                authorization,
                settings.request_timeout,
                budget,
                metrics,
                remaining,
            )?
            .with_max_retry_after(max_retry_after),
            view: settings.view.clone(),
            email: settings.email.clone(),
        })
    }

    /// The API client itself, for calls beyond the worker's (`setup`'s admin calls).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }
}

#[async_trait]
impl Helpdesk for GorgiasClient {
    fn view(&self) -> Option<&TicketView> {
        Some(&self.view)
    }

    /// `GET /api/customers/{id}` → `email`.
    async fn requester_email(&self, id: &RequesterId) -> Result<Option<String>, HelpdeskError> {
        let v = self
            .api
            .send(Method::GET, &format!("/api/customers/{id}"), None)
            .await?;
        Ok(email_at(&v, "/email"))
    }

    /// `POST /api/tickets/{id}/tags` with `{"names": […]}` adds tags (`PUT` would replace them).
    /// Gorgias tag names are case-sensitive: each goes as configured.
    async fn add_tags(&self, ticket: TicketId, tags: &[Tag]) -> Result<(), HelpdeskError> {
        let names: Vec<&str> = tags.iter().map(|t| t.for_vendor(Source::Gorgias)).collect();
        self.api
            .send(
                Method::POST,
                &format!("/api/tickets/{ticket}/tags"),
                Some(&json!({ "names": names })),
            )
            .await?;
        Ok(())
    }

    /// Adds with `POST …/tags`, removes with `DELETE /api/tickets/{id}/tags` `{"names": […]}`,
    /// writes the note as an internal note (`POST /api/tickets/{id}/messages`, channel
    /// `internal-note`: never sent to the customer). Custom fields are Zendesk's only.
    async fn write(&self, ticket: TicketId, update: &TicketUpdate) -> Result<(), HelpdeskError> {
        if !update.add.is_empty() {
            self.add_tags(ticket, &update.add).await?;
        }
        if !update.remove.is_empty() {
            self.api
                .send(
                    Method::DELETE,
                    &format!("/api/tickets/{ticket}/tags"),
                    Some(&json!({ "names": update.remove })),
                )
                .await?;
        }
        if let Some(note) = &update.note {
            let message = json!({
                "channel": "internal-note",
                "via": "api",
                "from_agent": true,
                "sender": { "email": self.email },
                "body_text": note,
            });
            self.api
                .send(
                    Method::POST,
                    &format!("/api/tickets/{ticket}/messages"),
                    Some(&message),
                )
                .await?;
        }
        Ok(())
    }

    /// `GET /api/tickets/{id}/tags` → the names (Gorgias events carry no tags by default).
    async fn current_tags(&self, ticket: TicketId) -> Result<Option<Vec<String>>, HelpdeskError> {
        let v = self
            .api
            .send(Method::GET, &format!("/api/tickets/{ticket}/tags"), None)
            .await?;
        let list = v.get("data").unwrap_or(&v);
        let names = list
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.get("name").and_then(serde_json::Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_limit_header_gives_calls_left() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-gorgias-account-api-call-limit",
            "10/40".parse().expect("hv"),
        );
        assert_eq!(remaining(&h), Some(30.0));
        h.insert(
            "x-gorgias-account-api-call-limit",
            "junk".parse().expect("hv"),
        );
        assert_eq!(remaining(&h), None);
    }
}
