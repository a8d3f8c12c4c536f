//! Zendesk's other rate-limit headers are honoured: `ratelimit-remaining` caps the account's
//! budget as `X-Rate-Limit-Remaining` does, and an endpoint's `zendesk-ratelimit-<endpoint>`
//! header caps Update Ticket's own budget, while the same kind of header on the tags endpoint's
//! answers spaces nothing. Gaps are read from the fake's clock; they are lower bounds (a loaded
//! machine only widens them), and without the headers the same calls fit in one burst; the one
//! upper bound (the unspaced tag writes) is half of what spacing would force.

use std::time::Duration;

use fake_helpdesk::{FakeHelpdesk, Helpdesk};
use ltv_tagger::domain::Source;

use crate::helpers::{spawn_app, trigger_body, AppOptions, TestApp};

const Z: Helpdesk = Helpdesk::Zendesk;

/// Arrival times of the Zendesk calls `method` whose path satisfies `matches`, in order.
fn arrivals(
    fake: &FakeHelpdesk,
    method: &str,
    matches: impl Fn(&str) -> bool,
) -> Vec<std::time::Instant> {
    let mut at: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.helpdesk == Z && r.method == method && matches(&r.path))
        .map(|r| r.at)
        .collect();
    at.sort();
    at
}

fn assert_spaced(at: &[std::time::Instant], at_least: Duration, what: &str) {
    assert_eq!(at.len(), 3, "{what}: {} calls", at.len());
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= at_least,
            "{what}: calls {gap:?} apart, wanted ≥ {at_least:?}"
        );
    }
}

/// Posts `tickets` (number, the tags its event carries) at once and waits until each is tagged.
async fn post_and_tag(app: &TestApp, tickets: &[(u64, &str)]) {
    for &(ticket, tags) in tickets {
        let res = app
            .post_zendesk(&trigger_body(ticket, "gold@shop.test", tags), None)
            .await;
        assert_eq!(res.status().as_u16(), 202);
    }
    for &(ticket, _) in tickets {
        let rows = app.wait_for_audit(Source::Zendesk, ticket, 1).await;
        assert_eq!(rows[0].record.outcome, "tagged", "ticket {ticket}");
    }
}

/// Three tickets: the first alone (its answer carries the header), then the other two at once.
/// Calls already holding a token when the header arrives are not held back, so only what comes
/// after the first answer is spaced.
async fn post_three(app: &TestApp, first: u64, tags: &str) {
    post_and_tag(app, &[(first, tags)]).await;
    post_and_tag(app, &[(first + 1, tags), (first + 2, tags)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_remaining_caps_the_account_budget_like_x_rate_limit_remaining() {
    // 60/min: a burst of 3 calls, then one about every 1.05 s.
    let app = spawn_app(AppOptions {
        tweak: Box::new(|raw| raw.zendesk.requests_per_minute = 60),
        ..AppOptions::default()
    })
    .await;
    // The account has no calls left, by this header only (the fake sends no X-Rate-Limit-*).
    app.fake.add_zendesk_header("ratelimit-remaining", "0");
    post_three(&app, 300, "web").await;

    let writes = arrivals(&app.fake, "PUT", |p| p.ends_with("/tags"));
    assert_spaced(&writes, Duration::from_millis(900), "tag writes");
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_ticket_endpoint_header_caps_update_tickets_own_budget() {
    let app = spawn_app(AppOptions {
        // The account's budget is large: only Update Ticket's own (100/min: a burst of 5,
        // then one about every 0.63 s) can space the calls.
        tweak: Box::new(|raw| raw.zendesk.requests_per_minute = 12_000),
        ..AppOptions::default()
    })
    .await;
    app.fake.add_zendesk_route_header(
        "PUT",
        "/api/v2/tickets/{id}",
        "zendesk-ratelimit-update-ticket",
        "total=100; remaining=0; resets=60",
    );
    // An endpoint header on other answers caps nothing of ours.
    app.fake.add_zendesk_route_header(
        "PUT",
        "/api/v2/tickets/{id}/tags",
        "zendesk-ratelimit-tickets-index",
        "total=100; remaining=0; resets=60",
    );
    // `vip` is stale for a gold customer: each write of 310-312 is one Update Ticket (add and
    // remove); 320-325 only gain `vip-gold`: each write is one call to the tags endpoint.
    for ticket in 310..313 {
        app.fake
            .set_ticket_tags(Z, &ticket.to_string(), &["vip", "web"]);
    }
    for ticket in 320..326 {
        app.fake.set_ticket_tags(Z, &ticket.to_string(), &["web"]);
    }
    // One of each alone, so that both headers are in before the rest is sent at once.
    post_and_tag(&app, &[(310, "vip web"), (320, "web")]).await;
    let rest: Vec<(u64, &str)> = (311..313)
        .map(|t| (t, "vip web"))
        .chain((321..326).map(|t| (t, "web")))
        .collect();
    post_and_tag(&app, &rest).await;

    let updates = arrivals(&app.fake, "PUT", |p| {
        p.strip_prefix("/api/v2/tickets/")
            .is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit()))
    });
    assert_spaced(&updates, Duration::from_millis(550), "Update Ticket calls");
    // Capped by the header like Update Ticket's budget, the five tag writes after the first
    // answer would span at least 4 × 0.63 s; under the account's budget alone (a burst of 20)
    // they go out together. Half the capped span is the bound.
    let tag_writes = arrivals(&app.fake, "PUT", |p| p.ends_with("/tags"));
    assert_eq!(tag_writes.len(), 6, "tag writes: {:?}", app.fake.calls());
    let span = tag_writes[5] - tag_writes[1];
    assert!(
        span < Duration::from_millis(1250),
        "the tag writes after the first answer spanned {span:?}: spaced by the endpoint header"
    );
    for ticket in (310..313).chain(320..326) {
        assert_eq!(
            app.zendesk_tags(ticket),
            ["vip-gold", "web"],
            "ticket {ticket}"
        );
    }
    app.fake.assert_no_violations();
    app.stop().await;
}
