//! Zendesk bulk updates: `PUT /api/v2/tickets/update_many.json?ids=…` (≤ 100 ids) with
//! `{"ticket":{"additional_tags":[…],"remove_tags":[…]}}` answers a queued `job_status` and runs
//! in the background (one ticket per [`FakeHelpdesk::set_bulk_ticket_time`]), closed tickets
//! included; `GET /api/v2/job_statuses/{id}` shows its progress and per-ticket `results`. At most
//! 30 jobs queued or working per account: the next `update_many` answers 429 `TooManyJobs` and
//! counts as a violation. Both calls pass authentication, the rate limit and injected failures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use serde_json::{json, Map, Value};

use super::{
    error_body, gate, numeric_or_string, Answer, BodyProblem, FakeHelpdesk, Helpdesk, Shared,
    State, MAX_BODY_BYTES,
};

/// Zendesk's limits: ids per `update_many`, jobs queued or working per account.
const MAX_IDS: usize = 100;
const MAX_JOBS: usize = 30;

/// The bulk jobs and their controls.
#[derive(Default)]
pub(super) struct Bulk {
    jobs: Vec<Job>,
    /// Time each ticket of a job takes (the job is `queued` for the first one).
    per_ticket: Duration,
    /// Tickets whose update fails inside a job: `(error, details)`.
    failing: HashMap<String, (String, String)>,
    /// The next jobs end with this status (`failed` or `killed`) and change nothing.
    doomed: Vec<&'static str>,
    /// Jobs created so far; the most jobs ever queued or working at once.
    created: usize,
    max_active: usize,
}

struct Job {
    id: String,
    tickets: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    created: Instant,
    per_ticket: Duration,
    doomed: Option<&'static str>,
    results: Vec<Value>,
}

impl Job {
    /// Tickets processed by `now`.
    fn progress(&self, now: Instant) -> usize {
        let total = self.tickets.len();
        if self.per_ticket.is_zero() {
            return total;
        }
        let elapsed = now.saturating_duration_since(self.created).as_secs_f64();
        ((elapsed / self.per_ticket.as_secs_f64()) as usize).min(total)
    }

    fn status(&self, now: Instant) -> &'static str {
        let done = self.progress(now);
        match (done, self.doomed) {
            (d, Some(end)) if d == self.tickets.len() => end,
            (d, _) if d == self.tickets.len() => "completed",
            (0, _) => "queued",
            _ => "working",
        }
    }

    fn active(&self, now: Instant) -> bool {
        matches!(self.status(now), "queued" | "working")
    }

    fn view(&self, base: &str, now: Instant) -> Value {
        let status = self.status(now);
        let results = match status {
            "queued" => Value::Null,
            "failed" | "killed" => json!([]),
            _ => json!(self.results),
        };
        json!({ "job_status": {
            "id": self.id,
            "url": format!("{base}/api/v2/job_statuses/{}.json", self.id),
            "job_type": "bulk_update",
            "status": status,
            "total": self.tickets.len(),
            "progress": if self.doomed.is_some() { 0 } else { self.progress(now) },
            "message": match status {
                "failed" => Some("Failed: the job ran into an error"),
                "killed" => Some("Killed"),
                "completed" => Some("Completed"),
                _ => None,
            },
            "results": results,
        }})
    }
}

/// Carries out the ticket updates every job has reached by `now`.
fn advance(state: &mut State, now: Instant) {
    let mut jobs = std::mem::take(&mut state.bulk.jobs);
    for job in jobs.iter_mut().filter(|j| j.doomed.is_none()) {
        let done = job.progress(now);
        while job.results.len() < done {
            let id = job.tickets[job.results.len()].clone();
            let result = update_one(state, &id, &job.add, &job.remove);
            job.results.push(result);
        }
    }
    state.bulk.jobs = jobs;
}

fn update_one(state: &mut State, id: &str, add: &[String], remove: &[String]) -> Value {
    let n = numeric_or_string(id);
    if let Some((error, details)) = state.bulk.failing.get(id) {
        return json!({ "id": n, "success": false, "status": "Failed", "error": error, "details": details });
    }
    let ticket = state.ticket_mut(Helpdesk::Zendesk, id);
    if ticket.deleted {
        return json!({ "id": n, "success": false, "status": "Failed", "error": "TicketNotFound",
                       "details": format!("Ticket {id} not found") });
    }
    // Closed tickets too: the documented way to tag them.
    ticket.tags.extend(add.iter().cloned());
    for tag in remove {
        ticket.tags.remove(tag);
    }
    ticket.writes += 1;
    json!({ "id": n, "action": "update", "success": true, "status": "Updated" })
}

enum Route {
    UpdateMany,
    Status(String),
}

fn route(path: &str) -> Option<Route> {
    let path = path.strip_suffix(".json").unwrap_or(path);
    if path == "/api/v2/tickets/update_many" {
        return Some(Route::UpdateMany);
    }
    let id = path.strip_prefix("/api/v2/job_statuses/")?;
    (!id.is_empty() && !id.contains('/')).then(|| Route::Status(id.to_owned()))
}

/// The answer for the routes of this file; `None` for every other route.
pub(super) fn answer(
    shared: &Shared,
    state: &mut State,
    req: &HttpRequest,
    helpdesk: Helpdesk,
    body: Result<&[u8], &BodyProblem>,
) -> Option<Answer> {
    if helpdesk != Helpdesk::Zendesk {
        return None;
    }
    let route = route(req.path())?;
    let who = format!("Zendesk {} {}", req.method(), req.path());
    let violate = |state: &mut State, why: &str| state.violations.push(format!("{who}: {why}"));
    let expected = match route {
        Route::UpdateMany => "PUT",
        Route::Status(_) => "GET",
    };
    if req.method().as_str() != expected {
        violate(state, &format!("method not allowed (use {expected})"));
        return Some(Answer::new(
            405,
            error_body(helpdesk, "InvalidEndpoint", "Method not allowed"),
        ));
    }
    let parsed = match route {
        Route::UpdateMany => Some(parse_update_many(req, body)),
        Route::Status(_) => None,
    };
    if let Some(Err((_, why))) = &parsed {
        violate(state, &format!("bad request: {why}"));
    }
    if let Some(answer) = gate(shared, state, req, helpdesk) {
        return Some(answer);
    }
    let now = Instant::now();
    advance(state, now);
    let base = format!("http://{}", req.connection_info().host());
    let Route::Status(id) = route else {
        let (tickets, add, remove) = match parsed {
            Some(Ok(p)) => p,
            Some(Err((status, why))) => {
                return Some(Answer::new(
                    status,
                    error_body(helpdesk, "InvalidValue", &why),
                ))
            }
            None => return None,
        };
        let active = state.bulk.jobs.iter().filter(|j| j.active(now)).count();
        if active >= MAX_JOBS {
            violate(
                state,
                &format!("a job over the limit of {MAX_JOBS} queued (429)"),
            );
            let mut answer = Answer::new(
                429,
                json!({ "error": "TooManyJobs", "description": format!("Number of allowed queued jobs ({MAX_JOBS}) exceeded") }),
            );
            answer.retry_after = Some(1);
            return Some(answer);
        }
        let bulk = &mut state.bulk;
        bulk.created += 1;
        let doomed = (!bulk.doomed.is_empty()).then(|| bulk.doomed.remove(0));
        let job = Job {
            id: format!("{:032x}", 0x5eed_0000_u64 + bulk.created as u64),
            tickets,
            add,
            remove,
            created: now,
            per_ticket: bulk.per_ticket,
            doomed,
            results: Vec::new(),
        };
        // Queued at its creation, whatever the job's speed.
        let mut view = job.view(&base, now);
        view["job_status"]["status"] = json!("queued");
        view["job_status"]["progress"] = json!(0);
        view["job_status"]["results"] = Value::Null;
        bulk.jobs.push(job);
        bulk.max_active = bulk.max_active.max(active + 1);
        return Some(Answer::new(200, view));
    };
    Some(match state.bulk.jobs.iter().find(|j| j.id == id) {
        Some(job) => Answer::new(200, job.view(&base, now)),
        None => Answer::new(404, error_body(helpdesk, "RecordNotFound", "Not found")),
    })
}

type Parsed = (Vec<String>, Vec<String>, Vec<String>);

/// `?ids=1,2,3` (1..=100 numeric ids) and `{"ticket":{"additional_tags"|"remove_tags":[…]}}`
/// with nothing else (a tagging service changes nothing else in bulk).
fn parse_update_many(
    req: &HttpRequest,
    body: Result<&[u8], &BodyProblem>,
) -> Result<Parsed, (u16, String)> {
    let bad = |why: String| (400, why);
    let query = actix_web::web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| bad(format!("query string: {e}")))?;
    let ids: Vec<String> = query
        .get("ids")
        .ok_or_else(|| bad("no `ids` parameter".into()))?
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    if ids
        .iter()
        .any(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(format!("`ids` holds a non-numeric id: {ids:?}")));
    }
    if ids.len() > MAX_IDS {
        return Err(bad(format!(
            "{} ids: at most {MAX_IDS} per call",
            ids.len()
        )));
    }
    let bytes = match body {
        Ok(b) => b,
        Err(BodyProblem::TooLarge) => return Err(bad(format!("body over {MAX_BODY_BYTES} bytes"))),
        Err(BodyProblem::Unreadable(e)) => return Err(bad(format!("body could not be read: {e}"))),
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("body is not JSON: {e}")))?;
    let ticket: &Map<String, Value> = value
        .get("ticket")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("body has no `ticket` object".into()))?;
    if let Some(other) = ticket
        .keys()
        .find(|k| !matches!(k.as_str(), "additional_tags" | "remove_tags"))
    {
        return Err(bad(format!(
            "`ticket.{other}` is not a field this service may set"
        )));
    }
    let list = |key: &str| -> Result<Vec<String>, (u16, String)> {
        let Some(v) = ticket.get(key) else {
            return Ok(Vec::new());
        };
        v.as_array()
            .ok_or_else(|| bad(format!("`{key}` is not an array")))?
            .iter()
            .map(|t| match t.as_str() {
                Some(s) if !s.trim().is_empty() && !s.contains(char::is_whitespace) => {
                    Ok(s.to_owned())
                }
                _ => Err(bad(format!("`{key}` holds {t}, not a tag"))),
            })
            .collect()
    };
    let (add, remove) = (list("additional_tags")?, list("remove_tags")?);
    if add.is_empty() && remove.is_empty() {
        return Err(bad("no tags to add or remove".into()));
    }
    Ok((ids, add, remove))
}

impl FakeHelpdesk {
    /// Each ticket of a bulk job takes `d` (the job stays `queued` for the first one, then
    /// `working`); zero (the default) finishes a job by its first poll.
    pub fn set_bulk_ticket_time(&self, d: Duration) {
        self.shared.lock().bulk.per_ticket = d;
    }

    /// That ticket's update fails inside every bulk job: `success: false` with `error` and
    /// `details` in its result.
    pub fn fail_in_bulk(&self, ticket: &str, error: &str, details: &str) {
        self.shared
            .lock()
            .bulk
            .failing
            .insert(ticket.to_owned(), (error.to_owned(), details.to_owned()));
    }

    /// The next bulk job ends `failed` or `killed`, changing no ticket.
    pub fn doom_next_bulk_job(&self, status: &'static str) {
        self.shared.lock().bulk.doomed.push(status);
    }

    /// Bulk jobs accepted so far.
    pub fn bulk_jobs(&self) -> usize {
        self.shared.lock().bulk.created
    }

    /// The most bulk jobs queued or working at the same time.
    pub fn max_active_bulk_jobs(&self) -> usize {
        self.shared.lock().bulk.max_active
    }

    /// Bulk jobs still queued or working now.
    pub fn active_bulk_jobs(&self) -> usize {
        let now = Instant::now();
        let mut state = self.shared.lock();
        advance(&mut state, now);
        state.bulk.jobs.iter().filter(|j| j.active(now)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize, per_ticket: Duration, doomed: Option<&'static str>) -> Job {
        Job {
            id: "j".into(),
            tickets: (0..n).map(|i| i.to_string()).collect(),
            add: vec!["vip".into()],
            remove: Vec::new(),
            created: Instant::now(),
            per_ticket,
            doomed,
            results: Vec::new(),
        }
    }

    #[test]
    fn a_job_is_queued_then_working_then_completed_at_one_ticket_per_step() {
        let step = Duration::from_secs(1);
        let j = job(3, step, None);
        let t0 = j.created;
        assert_eq!(j.status(t0), "queued");
        assert_eq!(j.status(t0 + step), "working");
        assert_eq!(j.progress(t0 + step * 2), 2);
        assert_eq!(j.status(t0 + step * 3), "completed");
        assert_eq!(job(3, step, Some("killed")).status(t0 + step * 9), "killed");
        assert_eq!(job(2, Duration::ZERO, None).status(t0), "completed");
    }

    #[test]
    fn routes_are_update_many_and_job_statuses() {
        assert!(matches!(
            route("/api/v2/tickets/update_many.json"),
            Some(Route::UpdateMany)
        ));
        assert!(matches!(
            route("/api/v2/tickets/update_many"),
            Some(Route::UpdateMany)
        ));
        assert!(
            matches!(route("/api/v2/job_statuses/abc.json"), Some(Route::Status(id)) if id == "abc")
        );
        assert!(route("/api/v2/tickets/7").is_none());
    }
}
