//! Zendesk Update Ticket (`PUT /api/v2/tickets/{id}`: `additional_tags`, `remove_tags`,
//! `custom_fields`, `comment`) and Gorgias messages (`POST /api/tickets/{id}/messages`), with
//! the checks the real APIs make and the ones a tagging service must keep (a comment or message
//! that an agent did not write must never be public).

use std::collections::BTreeMap;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::HttpRequest;
use serde_json::{json, Map, Value};

use super::{
    error_body, gate, not_found, safe_update, tag_list_answer, Answer, BodyProblem, FakeHelpdesk,
    Helpdesk, Shared, State, MAX_BODY_BYTES,
};

/// A note written on a ticket: Zendesk comment or Gorgias message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub body: String,
    pub public: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    UpdateTicket,
    Message,
}

fn route(helpdesk: Helpdesk, path: &str) -> Option<(Write, String)> {
    let (write, rest) = match helpdesk {
        Helpdesk::Zendesk => {
            let rest = path.strip_prefix("/api/v2/tickets/")?;
            (
                Write::UpdateTicket,
                rest.strip_suffix(".json").unwrap_or(rest),
            )
        }
        Helpdesk::Gorgias => (
            Write::Message,
            path.strip_prefix("/api/tickets/")?
                .strip_suffix("/messages")?,
        ),
    };
    (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then(|| (write, rest.to_owned()))
}

/// The answer for the routes of this file; `None` for every other route.
pub(super) fn answer(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
    body: Result<&[u8], &BodyProblem>,
) -> Option<Answer> {
    let (write, id) = route(helpdesk, req.path())?;
    let method = req.method().as_str();
    let expected = match write {
        Write::UpdateTicket => "PUT",
        Write::Message => "POST",
    };
    let who = format!("{helpdesk:?} {method} {}", req.path());
    let violate = |state: &mut State, why: &str| state.violations.push(format!("{who}: {why}"));
    if method != expected {
        violate(state, &format!("method not allowed (use {expected})"));
        return Some(Answer::new(
            405,
            error_body(helpdesk, "InvalidEndpoint", "Method not allowed"),
        ));
    }
    let parsed = match body {
        Ok(bytes) => parse_body(write, req, bytes),
        Err(BodyProblem::TooLarge) => Err(format!("body over {MAX_BODY_BYTES} bytes")),
        Err(BodyProblem::Unreadable(e)) => Err(format!("body could not be read: {e}")),
    };
    if let Err(why) = &parsed {
        violate(state, &format!("bad body: {why}"));
    }
    if let Ok(parsed) = &parsed {
        if parsed.note.as_ref().is_some_and(|n| n.public) {
            violate(state, "a public comment or message: customers would see it");
        }
    }
    if let Some(answer) = gate(shared, state, req, helpdesk) {
        return Some(answer);
    }
    let parsed = match parsed {
        Ok(p) => p,
        Err(why) => return Some(Answer::new(400, error_body(helpdesk, "InvalidValue", &why))),
    };
    let ticket = state.ticket_mut(helpdesk, &id);
    if ticket.deleted {
        return Some(not_found(helpdesk));
    }
    if ticket.closed && helpdesk == Helpdesk::Zendesk {
        return Some(Answer::new(
            422,
            json!({ "error": "RecordInvalid", "description": "Status: closed prevents ticket update" }),
        ));
    }
    if write == Write::UpdateTicket {
        if let Err(answer) = safe_update::check(ticket, body, Some("ticket")) {
            return Some(answer);
        }
        safe_update::written(ticket);
    }
    ticket.tags.extend(parsed.add.iter().cloned());
    for tag in &parsed.remove {
        ticket.tags.remove(tag);
    }
    ticket.fields.extend(parsed.fields.clone());
    ticket.notes.extend(parsed.note.clone());
    ticket.updates += 1;
    if !parsed.add.is_empty() || !parsed.remove.is_empty() {
        ticket.writes += 1;
    }
    Some(match write {
        Write::UpdateTicket => {
            let tags = ticket.tags.clone();
            let mut a = tag_list_answer(helpdesk, 200, &tags);
            a.body =
                Some(json!({ "ticket": { "id": id.parse::<u64>().unwrap_or(0), "tags": tags } }));
            a
        }
        Write::Message => Answer::new(
            201,
            json!({ "id": ticket.notes.len(), "channel": "internal-note" }),
        ),
    })
}

#[derive(Default)]
struct Parsed {
    add: Vec<String>,
    remove: Vec<String>,
    fields: BTreeMap<u64, Value>,
    note: Option<Note>,
}

fn parse_body(write: Write, req: &HttpRequest, bytes: &[u8]) -> Result<Parsed, String> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(format!(
            "Content-Type is `{content_type}`, expected application/json"
        ));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("body is not a JSON object")?;
    match write {
        Write::UpdateTicket => parse_update_ticket(object),
        Write::Message => parse_message(object),
    }
}

fn string_list(ticket: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    let Some(v) = ticket.get(key) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| format!("`{key}` is not an array"))?;
    list.iter()
        .map(|t| match t.as_str() {
            Some(s) if !s.trim().is_empty() && !s.contains(char::is_whitespace) => Ok(s.to_owned()),
            _ => Err(format!("`{key}` holds {t}, not a tag")),
        })
        .collect()
}

fn parse_update_ticket(body: &Map<String, Value>) -> Result<Parsed, String> {
    let ticket = body
        .get("ticket")
        .and_then(Value::as_object)
        .ok_or("body has no `ticket` object")?;
    const KNOWN: [&str; 4] = ["additional_tags", "remove_tags", "custom_fields", "comment"];
    let known = |k: &str| KNOWN.contains(&k) || safe_update::KEYS.contains(&k);
    if let Some(other) = ticket.keys().find(|k| !known(k)) {
        // `tags` would replace every tag of the ticket; anything else is not ours to change.
        return Err(format!(
            "`ticket.{other}` is not a field this service may set"
        ));
    }
    if ticket.is_empty() {
        return Err("`ticket` is empty".into());
    }
    let mut parsed = Parsed {
        add: string_list(ticket, "additional_tags")?,
        remove: string_list(ticket, "remove_tags")?,
        ..Parsed::default()
    };
    if let Some(fields) = ticket.get("custom_fields") {
        for f in fields.as_array().ok_or("`custom_fields` is not an array")? {
            let id = f
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("custom field {f} has no numeric `id`"))?;
            let value = f
                .get("value")
                .ok_or_else(|| format!("custom field {id} has no `value`"))?;
            parsed.fields.insert(id, value.clone());
        }
    }
    if let Some(comment) = ticket.get("comment") {
        let body = comment
            .get("body")
            .and_then(Value::as_str)
            .filter(|b| !b.trim().is_empty())
            .ok_or("`comment.body` is missing or empty")?;
        // Zendesk makes a comment public unless `public: false` says otherwise.
        let public = comment
            .get("public")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        parsed.note = Some(Note {
            body: body.to_owned(),
            public,
        });
    }
    Ok(parsed)
}

fn parse_message(body: &Map<String, Value>) -> Result<Parsed, String> {
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .ok_or("body has no `channel`")?;
    if body.get("from_agent").and_then(Value::as_bool) != Some(true) {
        return Err("`from_agent` must be true for a note".into());
    }
    if body.get("via").and_then(Value::as_str).is_none() {
        return Err("body has no `via`".into());
    }
    let text = body
        .get("body_text")
        .or_else(|| body.get("body_html"))
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
        .ok_or("`body_text` is missing or empty")?;
    Ok(Parsed {
        note: Some(Note {
            body: text.to_owned(),
            public: channel != "internal-note",
        }),
        ..Parsed::default()
    })
}

impl FakeHelpdesk {
    /// The custom field values a ticket holds, by field id.
    pub fn ticket_fields(&self, helpdesk: Helpdesk, ticket: &str) -> BTreeMap<u64, Value> {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .map(|t| t.fields.clone())
            .unwrap_or_default()
    }

    /// The comments (Zendesk) or messages (Gorgias) written on a ticket, in order.
    pub fn notes(&self, helpdesk: Helpdesk, ticket: &str) -> Vec<Note> {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .map(|t| t.notes.clone())
            .unwrap_or_default()
    }

    /// How many Update Ticket calls (Zendesk) or messages (Gorgias) a ticket received.
    pub fn ticket_updates(&self, helpdesk: Helpdesk, ticket: &str) -> usize {
        self.shared
            .lock()
            .tickets
            .get(&(helpdesk, ticket.to_owned()))
            .map_or(0, |t| t.updates)
    }
}
