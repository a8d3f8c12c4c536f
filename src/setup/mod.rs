//! `setup zendesk|gorgias`: register ltv-tagger with the helpdesk through its admin API, idempotently.
//!
//! Each helpdesk's steps live in `zendesk.rs` and `gorgias.rs`; this file holds what they share: a
//! [`Session`] that sends every call through the helpdesk's [`ApiClient`] (its auth, status mapping
//! and rate budget), prints what it does, and in `--dry-run` sends reads only and prints each
//! write it would send (secrets redacted); and the [`Report`] of what was created, updated or
//! left alone, which an error answer carries so nothing done is left unreported.

mod gorgias;
mod secret_file;
mod zendesk;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use reqwest::{Method, Url};
use serde_json::Value;

use crate::helpdesk::{ApiClient, HelpdeskError};

pub use gorgias::{setup_gorgias, GorgiasSetup};
pub use zendesk::{setup_zendesk, ZendeskSetup, TRIGGER_BODY, TRIGGER_TITLE};

/// The name every object `setup` creates carries; it is how a second run finds them.
pub const NAME: &str = "ltv-tagger";

/// Shown in place of a secret in dry-run output.
pub const REDACTED: &str = "[REDACTED]";

/// The command line of `setup`.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// Where ltv-tagger is reachable from the helpdesk, e.g. `https://tagger.acme.com`.
    pub public_url: Url,
    /// Write the webhook secret here (mode 0600).
    pub secret_out: Option<PathBuf>,
    pub dry_run: bool,
}

impl SetupOptions {
    /// `--public-url`: an absolute http(s) URL without query or fragment.
    pub fn parse_public_url(raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw.trim())
            .map_err(|e| format!("--public-url: {raw:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(format!(
                "--public-url: {raw:?} must be an http(s):// URL with a host"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "--public-url: {raw:?} must not carry a query or fragment"
            ));
        }
        Ok(url)
    }

    /// `URL/webhooks/{helpdesk}` (a path in the public URL is kept).
    pub fn endpoint(&self, helpdesk: &str) -> String {
        format!(
            "{}/webhooks/{helpdesk}",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// What one step did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    WouldCreate,
    WouldUpdate,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::WouldCreate => "would create",
            Change::WouldUpdate => "would update",
        })
    }
}

/// One object and what happened to it.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    pub id: Option<String>,
    pub change: Change,
    /// Where to find it in the helpdesk's admin UI.
    pub admin_path: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.change, self.what)?;
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        write!(f, " — {}", self.admin_path)
    }
}

/// Everything a run did, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub steps: Vec<Step>,
}

impl Report {
    /// The steps that changed something at the helpdesk.
    pub fn changes(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s.change, Change::Created | Change::Updated))
    }
}

/// A run stopped by an error, with what it had done before.
#[derive(Debug)]
pub struct SetupError {
    pub cause: String,
    pub report: Report,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.cause)?;
        let changed: Vec<&Step> = self.report.changes().collect();
        if changed.is_empty() {
            write!(f, "nothing was created or changed before the error")
        } else {
            write!(
                f,
                "done before the error (kept; run setup again to finish):"
            )?;
            for step in changed {
                write!(f, "\n  {step}")?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for SetupError {}

/// One admin object to create or update ([`Session::upsert`]).
pub(crate) struct Upsert<'v> {
    /// What it is, for errors (`webhook`).
    pub kind: &'static str,
    /// `POST` here creates it; `PUT {collection}/{id}` updates it.
    pub collection: &'v str,
    /// Where the create answer holds the new id (`/webhook/id`).
    pub created_id: &'v str,
    /// The object found by name, and whether it already is as wanted.
    pub found: Option<&'v Value>,
    pub same: bool,
    pub body: &'v Value,
    /// `body` with its secrets redacted, for a dry run.
    pub shown: &'v Value,
}

/// One run against one helpdesk: sends, prints, records.
pub(crate) struct Session<'a> {
    api: &'a ApiClient,
    dry_run: bool,
    out: &'a mut dyn Write,
    report: Report,
}

impl<'a> Session<'a> {
    pub(crate) fn new(api: &'a ApiClient, dry_run: bool, out: &'a mut dyn Write) -> Self {
        Session {
            api,
            dry_run,
            out,
            report: Report::default(),
        }
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub(crate) fn say(&mut self, line: &str) {
        // stdout going away (a closed pipe) must not stop the run half-way.
        let _ = writeln!(self.out, "{line}");
    }

    /// A read, sent in a dry run too (to decide between create and update).
    pub(crate) async fn read(&mut self, path: &str) -> Result<Value, SetupError> {
        if self.dry_run {
            self.say(&format!("GET {path}"));
        }
        self.api
            .send(Method::GET, path, None)
            .await
            .map_err(|e| self.fail(&e))
    }

    /// A read whose answer holds a secret: the answer is never printed.
    pub(crate) async fn read_secret(&mut self, path: &str) -> Result<Option<Value>, SetupError> {
        if self.dry_run {
            self.say(&format!(
                "GET {path}   (not sent in a dry run: the answer is a secret)"
            ));
            return Ok(None);
        }
        let v = self
            .api
            .send(Method::GET, path, None)
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(Some(v))
    }

    /// A write: sent (its answer returned), or in a dry run printed with `shown` as the body
    /// (the body with its secrets redacted) and not sent (`None`).
    pub(crate) async fn write(
        &mut self,
        method: Method,
        path: &str,
        body: &Value,
        shown: &Value,
    ) -> Result<Option<Value>, SetupError> {
        if self.dry_run {
            let pretty = serde_json::to_string_pretty(shown).unwrap_or_default();
            self.say(&format!("{method} {path}\n{pretty}"));
            return Ok(None);
        }
        self.api
            .send(method, path, Some(body))
            .await
            .map(Some)
            .map_err(|e| self.fail(&e))
    }

    /// Records a step (and prints it in a real run).
    pub(crate) fn record(&mut self, step: Step) {
        if !self.dry_run {
            self.say(&step.to_string());
        }
        self.report.steps.push(step);
    }

    /// An error with the report so far (the session goes on only to be dropped).
    pub(crate) fn fail(&self, e: &dyn fmt::Display) -> SetupError {
        SetupError {
            cause: e.to_string(),
            report: self.report.clone(),
        }
    }

    /// Creates the object at `u.collection`, or brings the one found up to date: unchanged when
    /// `u.found` already matches (`u.same`), `PUT collection/{id}` otherwise. Returns its id
    /// (`None` in a dry run that would create it).
    pub(crate) async fn upsert(
        &mut self,
        u: Upsert<'_>,
        step: impl Fn(Option<String>, Change) -> Step,
    ) -> Result<Option<String>, SetupError> {
        match u.found {
            Some(existing) => {
                let id = id_at(existing, "/id")
                    .ok_or_else(|| self.fail(&missing_id(u.kind, existing)))?;
                if u.same {
                    self.record(step(Some(id.clone()), Change::Unchanged));
                } else {
                    let path = format!("{}/{id}", u.collection);
                    let sent = self.write(Method::PUT, &path, u.body, u.shown).await?;
                    let change = if sent.is_some() {
                        Change::Updated
                    } else {
                        Change::WouldUpdate
                    };
                    self.record(step(Some(id.clone()), change));
                }
                Ok(Some(id))
            }
            None => match self
                .write(Method::POST, u.collection, u.body, u.shown)
                .await?
            {
                Some(answer) => {
                    let id = id_at(&answer, u.created_id)
                        .ok_or_else(|| self.fail(&missing_id(u.kind, &answer)))?;
                    self.record(step(Some(id.clone()), Change::Created));
                    Ok(Some(id))
                }
                None => {
                    self.record(step(None, Change::WouldCreate));
                    Ok(None)
                }
            },
        }
    }

    pub(crate) fn finish(self) -> Report {
        self.report
    }
}

/// `path?key=value…`, percent-encoded.
pub(crate) fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = match Url::parse("http://helpdesk.invalid") {
        Ok(u) => u,
        Err(_) => return path.to_owned(),
    };
    url.set_path(path);
    url.query_pairs_mut().extend_pairs(pairs);
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The id at `pointer` in an answer, as text (Zendesk webhook ids are strings, others numbers).
pub(crate) fn id_at(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A helpdesk answer without the id `setup` needs.
pub(crate) fn missing_id(what: &str, v: &Value) -> HelpdeskError {
    HelpdeskError::Rejected {
        status: 200,
        reason: format!(
            "{what}: the answer has no id: {}",
            crate::domain::truncate(&v.to_string(), 200)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_must_be_an_absolute_http_url() {
        assert!(SetupOptions::parse_public_url("https://tagger.acme.com").is_ok());
        for bad in [
            "tagger.acme.com",
            "ftp://x",
            "https://x/?a=1",
            "https://x/#f",
            "",
        ] {
            let e = SetupOptions::parse_public_url(bad).unwrap_err();
            assert!(e.starts_with("--public-url:"), "{e}");
        }
        let opts = SetupOptions {
            public_url: SetupOptions::parse_public_url("https://acme.com/tagger/").expect("url"),
            secret_out: None,
            dry_run: false,
        };
        assert_eq!(
            opts.endpoint("zendesk"),
            "https://acme.com/tagger/webhooks/zendesk"
        );
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            with_query(
                "/api/v2/triggers/search",
                &[("query", "ltv-tagger: new ticket")]
            ),
            "/api/v2/triggers/search?query=ltv-tagger%3A+new+ticket"
        );
    }
}
