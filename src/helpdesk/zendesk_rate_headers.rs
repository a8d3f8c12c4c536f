//! Zendesk's counts of calls left, from its answers' headers.
//!
//! Every Ticketing API answer carries the account's count as `X-Rate-Limit-Remaining: 699`;
//! many also carry `ratelimit-remaining: 699` (with `ratelimit-limit` and `ratelimit-reset`), and
//! an endpoint with a limit of its own adds `zendesk-ratelimit-<endpoint>: total=100;
//! remaining=99; resets=41` (for example `zendesk-ratelimit-tickets-index` on List Tickets).
//! The lowest account count caps the account's budget; an endpoint header caps the budget of
//! the endpoint the call went to, where the service keeps one (Update Ticket's).

use reqwest::header::HeaderMap;

/// Prefix of the per-endpoint headers.
const ENDPOINT_PREFIX: &str = "zendesk-ratelimit-";

/// The account's calls left: the lowest of `X-Rate-Limit-Remaining` and `ratelimit-remaining`.
pub fn account_remaining(h: &HeaderMap) -> Option<f64> {
    ["x-rate-limit-remaining", "ratelimit-remaining"]
        .iter()
        .filter_map(|name| h.get(*name)?.to_str().ok()?.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .reduce(f64::min)
}

/// The lowest `remaining=` of the answer's `zendesk-ratelimit-<endpoint>` headers: the limit of
/// the endpoint that answered.
pub fn endpoint_remaining(h: &HeaderMap) -> Option<f64> {
    h.iter()
        .filter(|(name, _)| name.as_str().starts_with(ENDPOINT_PREFIX))
        .filter_map(|(_, value)| remaining_param(value.to_str().ok()?))
        .reduce(f64::min)
}

/// `remaining` of `total=100; remaining=99; resets=41` (any order, spaces and case aside).
fn remaining_param(value: &str) -> Option<f64> {
    value
        .split([';', ','])
        .filter_map(|part| part.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("remaining"))
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn the_lowest_account_count_wins_and_either_header_alone_is_read() {
        let h = headers(&[
            ("X-Rate-Limit-Remaining", "699"),
            ("ratelimit-remaining", "12"),
        ]);
        assert_eq!(account_remaining(&h), Some(12.0));
        assert_eq!(
            account_remaining(&headers(&[("x-rate-limit-remaining", " 123 ")])),
            Some(123.0)
        );
        assert_eq!(
            account_remaining(&headers(&[("RateLimit-Remaining", "7")])),
            Some(7.0)
        );
        let bad = headers(&[
            ("ratelimit-remaining", "soon"),
            ("x-rate-limit-remaining", "9"),
        ]);
        assert_eq!(account_remaining(&bad), Some(9.0));
        assert_eq!(account_remaining(&HeaderMap::new()), None);
    }

    #[test]
    fn endpoint_headers_are_read_by_their_remaining_parameter() {
        let h = headers(&[(
            "zendesk-ratelimit-tickets-index",
            "total=100; remaining=99; resets=41",
        )]);
        assert_eq!(endpoint_remaining(&h), Some(99.0));
        let h = headers(&[
            (
                "Zendesk-RateLimit-Update-Ticket",
                "resets=30;REMAINING = 4;total=100",
            ),
            (
                "zendesk-ratelimit-other",
                "total=30, remaining=2, resets=600",
            ),
            ("zendesk-ratelimit-broken", "total=30; resets=600"),
        ]);
        assert_eq!(endpoint_remaining(&h), Some(2.0));
        // The account's headers are not an endpoint's.
        let h = headers(&[
            ("ratelimit-remaining", "5"),
            ("x-rate-limit-remaining", "5"),
        ]);
        assert_eq!(endpoint_remaining(&h), None);
        assert_eq!(
            endpoint_remaining(&headers(&[("zendesk-ratelimit-x", "remaining=inf")])),
            None
        );
    }
}
