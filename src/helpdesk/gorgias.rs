//! Gorgias REST API: read a customer's email, add tags to a ticket.

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use super::api::numeric_id;
use super::{basic_auth, email_at, ApiClient, Helpdesk, HelpdeskError};
use crate::config::GorgiasSettings;
use crate::domain::{RequesterId, Source, Tag, TicketId};
use crate::metrics::Metrics;
use crate::rate_budget::RateBudget;
use crate::state::StateStore;

pub struct GorgiasClient {
    api: ApiClient,
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
            )?,
        })
    }

    /// The API client itself, for calls beyond the worker's (`setup`'s admin calls).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }
}

#[async_trait]
impl Helpdesk for GorgiasClient {
    /// `GET /api/customers/{id}` → `email`.
    async fn requester_email(&self, id: &RequesterId) -> Result<Option<String>, HelpdeskError> {
        let id = numeric_id(id.as_str(), "Gorgias customer")?;
        let v = self
            .api
            .send(Method::GET, &format!("/api/customers/{id}"), None)
            .await?;
        Ok(email_at(&v, "/email"))
    }

    /// `POST /api/tickets/{id}/tags` with `{"names": […]}` adds tags (`PUT` would replace them).
    async fn add_tags(&self, ticket: TicketId, tags: &[Tag]) -> Result<(), HelpdeskError> {
        self.api
            .send(
                Method::POST,
                &format!("/api/tickets/{ticket}/tags"),
                Some(&json!({ "names": tags })),
            )
            .await?;
        Ok(())
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
