//! Helpdesk answers that go wrong: a 2xx look-up whose body is empty, not JSON, cut off or
//! stalled is retried (never a final "no email"); huge bodies are not read whole; a 5xx asking for
//! hours of `Retry-After` pauses tagging only up to `worker.max_retry_after`, and the jobs wait
//! in the queue meanwhile, not as `running`.

use std::time::{Duration, Instant};

use fake_helpdesk::Helpdesk;
use ltv_tagger::domain::Source;

use crate::helpers::{spawn_app, wait_until, AppOptions, TestApp};
use crate::support::mangling_proxy::{ManglingProxy, Spoil};

/// A trigger body naming the requester by id only: the worker must look the email up.
fn by_requester_id(ticket: u64, requester: &str) -> String {
    serde_json::json!({
        "ticket_id": ticket.to_string(),
        "requester_email": "",
        "requester_id": requester,
        "tags": "",
    })
    .to_string()
}

/// The app with its Zendesk API behind a [`ManglingProxy`].
async fn app_behind_proxy(timeout: Duration) -> (TestApp, ManglingProxy) {
    let proxy = ManglingProxy::start().await;
    let base = proxy.base_url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let app = spawn_app(AppOptions {
        gorgias: false,
        tweak: Box::new(move |raw| {
            tx.send(raw.zendesk.api_base_url.clone()).expect("send");
            raw.zendesk.api_base_url = base;
            raw.zendesk.request_timeout = timeout;
        }),
        ..AppOptions::default()
    })
    .await;
    proxy.set_upstream(&rx.recv().expect("fake url"));
    (app, proxy)
}

async fn wait_for_tags(app: &TestApp, ticket: u64, within: Duration) {
    let t = ticket.to_string();
    wait_until(within, &format!("ticket {ticket} tagged"), || async {
        !app.fake.tags(Helpdesk::Zendesk, &t).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_answered_2xx_with_an_unusable_body_is_retried_until_the_ticket_is_tagged() {
    let (app, proxy) = app_behind_proxy(Duration::from_secs(2)).await;
    app.fake.add_zendesk_user("77", "gold@shop.test");
    for spoil in [
        Spoil::Empty,
        Spoil::NotJson,
        Spoil::CutOff,
        Spoil::Stall(Duration::from_secs(10)),
    ] {
        proxy.spoil_next("/api/v2/users/", spoil);
    }
    let r = app.post_zendesk(&by_requester_id(501, "77"), None).await;
    assert_eq!(r.status().as_u16(), 202);

    wait_for_tags(&app, 501, Duration::from_secs(60)).await;
    assert_eq!(proxy.spoiled(), 4, "every spoiled answer was asked for");
    assert_eq!(app.zendesk_tags(501), ["vip-gold"]);
    let rows = app.wait_for_audit(Source::Zendesk, 501, 1).await;
    assert!(
        rows.iter().all(|r| r.record.outcome == "tagged"),
        "{:?}",
        rows.iter().map(|r| &r.record.outcome).collect::<Vec<_>>()
    );
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_hundreds_of_megabytes_are_not_read_and_the_job_still_completes() {
    let (app, proxy) = app_behind_proxy(Duration::from_secs(10)).await;
    app.fake.add_zendesk_user("78", "gold@shop.test");
    const BIG: u64 = 400 * 1024 * 1024;
    proxy.spoil_next(
        "/api/v2/users/",
        Spoil::Huge {
            status: 200,
            bytes: BIG,
        },
    );
    proxy.spoil_next(
        "/api/v2/tickets/",
        Spoil::Huge {
            status: 500,
            bytes: BIG,
        },
    );
    let r = app.post_zendesk(&by_requester_id(502, "78"), None).await;
    assert_eq!(r.status().as_u16(), 202);

    wait_for_tags(&app, 502, Duration::from_secs(60)).await;
    assert_eq!(proxy.spoiled(), 2);
    // The client stops at the cap (1 MiB); socket buffers let a few MB more leave the server.
    let sent = proxy.bytes_sent();
    println!("bytes pulled from two 400 MB answers: {sent}");
    assert!(sent < 2 * 32 * 1024 * 1024, "{sent} bytes read");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_asking_for_two_hours_pauses_tagging_only_up_to_max_retry_after_with_jobs_waiting() {
    let app = spawn_app(AppOptions {
        gorgias: false,
        tweak: Box::new(|raw| raw.worker.max_retry_after = Duration::from_secs(8)),
        ..AppOptions::default()
    })
    .await;
    // The first call gets a proxy's 503 with `Retry-After: 7200`.
    app.fake.fail_next(1, 503, Some(7200));
    let started = Instant::now();
    let r = app
        .post_zendesk(
            &crate::helpers::trigger_body(600, "gold@shop.test", ""),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    wait_until(Duration::from_secs(20), "the 503", || async {
        app.fake.count_status(503) == 1
    })
    .await;
    // More work arrives during the pause: it waits in the queue, none of it is held `running`.
    for t in 601..=605 {
        let body = crate::helpers::trigger_body(t, "gold@shop.test", "");
        assert_eq!(app.post_zendesk(&body, None).await.status().as_u16(), 202);
    }
    wait_until(
        Duration::from_secs(20),
        "all jobs waiting, none running",
        || async {
            let d = app.store.queue_depth().await.expect("depth");
            d.queued == 6 && d.running == 0
        },
    )
    .await;

    for t in 600..=605 {
        wait_for_tags(&app, t, Duration::from_secs(90)).await;
    }
    let took = started.elapsed();
    println!("tagged after the 503 in {took:?}");
    assert!(
        took >= Duration::from_secs(7),
        "the pause was not honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(120), "{took:?}");
    // Nothing was called during the pause but the one 503.
    let calls = app.fake.requests();
    let first = calls.first().expect("calls").at;
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.at.duration_since(first) >= Duration::from_secs(7)),
        "a call was made during the pause"
    );
    app.stop().await;
}
