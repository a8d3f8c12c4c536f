//! The demo's fake Zendesk on loopback: `PUT /api/v2/tickets/{id}/tags` adds tags, nothing more.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use crate::config::RawSettings;

/// The API credentials the fake accepts, and that [`FakeZendesk::serve_zendesk_for`] configures.
const EMAIL: &str = "agent@example.com";
const API_TOKEN: &str = "fake-zendesk-api-token";

/// A running fake; the server stops when it is dropped.
pub struct FakeZendesk {
    tickets: web::Data<Tickets>,
    server: ServerHandle,
    base_url: String,
}

/// The tags of every ticket written so far, by ticket id.
#[derive(Default)]
struct Tickets(Mutex<HashMap<String, BTreeSet<String>>>);

impl Tickets {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The only `Authorization` header the fake accepts.
struct ExpectedAuth(String);

#[derive(Deserialize)]
struct TagsBody {
    tags: Vec<String>,
}

impl FakeZendesk {
    /// Binds 127.0.0.1 on a free port and serves the fake from the current tokio runtime.
    pub fn start() -> std::io::Result<FakeZendesk> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let tickets = web::Data::new(Tickets::default());
        let auth = web::Data::new(ExpectedAuth(authorization(EMAIL)));
        let data = tickets.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(auth.clone())
                .route("/api/v2/tickets/{id}/tags", web::put().to(add_tags))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        tokio::spawn(server);
        Ok(FakeZendesk {
            tickets,
            server: server_handle,
            base_url,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Points `raw`'s Zendesk section at this fake, with the credentials it accepts.
    pub fn serve_zendesk_for(&self, raw: &mut RawSettings, webhook_secret: &str) {
        raw.zendesk.api_base_url = self.base_url.clone();
        raw.zendesk.email = EMAIL.to_owned();
        raw.zendesk.api_token = API_TOKEN.to_owned().into();
        raw.zendesk.webhook_secret = webhook_secret.to_owned().into();
    }

    /// The ticket's current tags, sorted.
    pub fn tags(&self, ticket: &str) -> Vec<String> {
        self.tickets
            .lock()
            .get(ticket)
            .map(|tags| tags.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for FakeZendesk {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.server.stop(false));
    }
}

/// `Basic base64("{email}/token:{api_token}")`, Zendesk's API-token form of Basic auth.
fn authorization(email: &str) -> String {
    let credentials = format!("{email}/token:{API_TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// Adds the body's tags to the ticket, keeping the others, and answers them all.
async fn add_tags(
    req: HttpRequest,
    ticket: web::Path<String>,
    body: web::Bytes,
    tickets: web::Data<Tickets>,
    auth: web::Data<ExpectedAuth>,
) -> HttpResponse {
    if req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()) != Some(auth.0.as_bytes()) {
        return HttpResponse::Unauthorized().json(json!({ "error": "Couldn't authenticate you" }));
    }
    let added = match serde_json::from_slice::<TagsBody>(&body) {
        Ok(body) => body.tags,
        Err(e) => {
            return HttpResponse::BadRequest()
                .json(json!({ "error": "InvalidValue", "description": e.to_string() }))
        }
    };
    let mut tickets = tickets.lock();
    let tags = tickets.entry(ticket.into_inner()).or_default();
    tags.extend(added);
    HttpResponse::Ok().json(json!({ "tags": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_with_the_api_token_adds_tags_and_anything_else_changes_nothing() {
        let fake = FakeZendesk::start().expect("fake starts");
        let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load");
        fake.serve_zendesk_for(&mut raw, "secret");
        let http = reqwest::Client::new();
        let url = format!("{}/api/v2/tickets/7/tags", fake.base_url());
        let put = |email: &str, body: &'static str| {
            http.put(&url)
                .header("authorization", authorization(email))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };

        let wrong = put("someone@example.com", r#"{"tags":["x"]}"#)
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let bad = put(&raw.zendesk.email, r#"{"names":["x"]}"#).await.unwrap();
        assert_eq!(bad.status().as_u16(), 400);
        assert!(fake.tags("7").is_empty());

        put(&raw.zendesk.email, r#"{"tags":["vip"]}"#)
            .await
            .unwrap();
        let ok = put(&raw.zendesk.email, r#"{"tags":["b","vip"]}"#)
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let body: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(body, json!({ "tags": ["b", "vip"] }));
        assert_eq!(fake.tags("7"), ["b", "vip"]);
        assert_eq!(raw.zendesk.api_base_url, fake.base_url());
    }
}
