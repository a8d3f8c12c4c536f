//! Zendesk's other rate-limit headers, sent as the test sets them: `ratelimit-remaining` and
//! `zendesk-ratelimit-<endpoint>: total=…; remaining=…; resets=…`, on every Zendesk answer or
//! only on those of one route (method and path pattern, `{id}` for a number).

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::FakeHelpdesk;

/// A route (method, path pattern), or `None` for every answer.
type Route = Option<(String, String)>;

/// Headers added to the Zendesk answers a route filter matches.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExtraHeaders {
    rules: Vec<(Route, String, String)>,
}

impl ExtraHeaders {
    /// The headers for an answer to `method path`.
    pub(crate) fn for_route<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.rules
            .iter()
            .filter(move |(route, _, _)| match route {
                None => true,
                Some((m, p)) => m == method && path_matches(p, path),
            })
            .map(|(_, name, value)| (name.as_str(), value.as_str()))
    }
}

/// Adds the headers that apply to the answer of `req`.
pub(crate) fn add(extra: &ExtraHeaders, req: &HttpRequest, response: &mut HttpResponse) {
    for (name, value) in extra.for_route(req.method().as_str(), req.path()) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
}

/// `/api/v2/tickets/{id}` matches `/api/v2/tickets/42` (not `/api/v2/tickets/42/tags`).
fn path_matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some("{id}"), Some(seg))
                if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

impl FakeHelpdesk {
    /// From now on every Zendesk answer carries `name: value`.
    pub fn add_zendesk_header(&self, name: &str, value: &str) {
        self.shared
            .lock()
            .extra_headers
            .rules
            .push((None, name.to_owned(), value.to_owned()));
    }

    /// From now on Zendesk's answers to `method path_pattern` carry `name: value`.
    pub fn add_zendesk_route_header(
        &self,
        method: &str,
        path_pattern: &str,
        name: &str,
        value: &str,
    ) {
        self.shared.lock().extra_headers.rules.push((
            Some((method.to_owned(), path_pattern.to_owned())),
            name.to_owned(),
            value.to_owned(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn id_patterns_match_one_numeric_segment() {
        assert!(path_matches("/api/v2/tickets/{id}", "/api/v2/tickets/42"));
        assert!(!path_matches(
            "/api/v2/tickets/{id}",
            "/api/v2/tickets/42/tags"
        ));
        assert!(!path_matches("/api/v2/tickets/{id}", "/api/v2/tickets/x"));
    }
}
