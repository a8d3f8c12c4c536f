//! The ingest edge: every bad input gets its status and a clear error, and changes nothing.

use std::time::Duration;

use ltv_tagger::http::webhooks::zendesk;

use crate::helpers::{
    gorgias_body, now_ts, spawn_app, trigger_body, AppOptions, TestApp, GORGIAS_TOKEN,
    ZENDESK_SECRET,
};

async fn post_raw(
    app: &TestApp,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .post(format!("{}/webhooks/zendesk", app.base))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

fn signed(body: &[u8], ts: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "X-Zendesk-Webhook-Signature",
            zendesk::sign(ZENDESK_SECRET, ts, body),
        ),
        ("X-Zendesk-Webhook-Signature-Timestamp", ts.to_string()),
    ]
}

async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.count("inbox").await, 0, "inbox rows");
    assert_eq!(app.count("job").await, 0, "jobs");
    assert!(
        app.fake.requests().is_empty(),
        "helpdesk calls: {:?}",
        app.fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_stale_timestamps_and_bad_bodies_are_refused_and_change_nothing() {
    let app = spawn_app(AppOptions::default()).await;
    let body = trigger_body(1, "gold@shop.test", "").into_bytes();
    let ts = now_ts();
    let stale = (chrono::Utc::now() - chrono::Duration::minutes(6))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let future = (chrono::Utc::now() + chrono::Duration::minutes(6))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut wrong_secret = signed(&body, &ts);
    wrong_secret[0].1 = zendesk::sign("another-secret", &ts, &body);
    let mut tampered = body.clone();
    tampered[3] ^= 1;

    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no headers",
            vec![],
            body.clone(),
            401,
            "missing X-Zendesk-Webhook-Signature",
        ),
        (
            "wrong secret",
            wrong_secret,
            body.clone(),
            401,
            "signature does not match",
        ),
        (
            "tampered body",
            signed(&body, &ts),
            tampered,
            401,
            "signature does not match",
        ),
        (
            "stale timestamp",
            signed(&body, &stale),
            body.clone(),
            401,
            "replay window",
        ),
        (
            "future timestamp",
            signed(&body, &future),
            body.clone(),
            401,
            "replay window",
        ),
        (
            "not base64",
            vec![
                ("X-Zendesk-Webhook-Signature", "%%%".into()),
                ("X-Zendesk-Webhook-Signature-Timestamp", ts.clone()),
            ],
            body.clone(),
            401,
            "not base64",
        ),
        (
            "malformed JSON",
            signed(b"{\"ticket_id\": ", &ts),
            b"{\"ticket_id\": ".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "no ticket id",
            signed(b"{\"requester_email\": \"a@b.c\"}", &ts),
            b"{\"requester_email\": \"a@b.c\"}".to_vec(),
            400,
            "ticket_id is missing",
        ),
        (
            "bad ticket id",
            signed(
                b"{\"ticket_id\": \"abc\", \"requester_email\": \"a@b.c\"}",
                &ts,
            ),
            b"{\"ticket_id\": \"abc\", \"requester_email\": \"a@b.c\"}".to_vec(),
            400,
            "positive integer",
        ),
    ];
    for (name, headers, body, status, message) in cases {
        let (got, json) = post_raw(&app, &headers, body).await;
        assert_eq!(got, status, "{name}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{name}: error {error:?} should say {message:?}"
        );
    }
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_before_it_is_read() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|r| r.server.max_body_bytes = 2048),
        ..Default::default()
    })
    .await;
    let pad = "x".repeat(4096);
    let body = format!(
        "{{\"ticket_id\": \"1\", \"requester_email\": \"gold@shop.test\", \"pad\": \"{pad}\"}}"
    )
    .into_bytes();
    let (status, json) = post_raw(&app, &signed(&body, &now_ts()), body.clone()).await;
    assert_eq!(status, 413, "{json}");
    assert!(json["error"]
        .as_str()
        .unwrap_or_default()
        .contains("max_body_bytes"));
    // Same through Gorgias, streamed without a Content-Length.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(body.clone())]);
    let res = app
        .http
        .post(format!("{}/webhooks/gorgias", app.base))
        .header("X-Webhook-Token", GORGIAS_TOKEN)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 413);
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gorgias_requests_need_the_shared_token() {
    let app = spawn_app(AppOptions::default()).await;
    let body = gorgias_body(7, "gold@shop.test");
    for token in [None, Some("wrong"), Some("")] {
        let res = app.post_gorgias(&body, token).await;
        assert_eq!(res.status().as_u16(), 401, "{token:?}");
    }
    let res = app
        .post_gorgias("{\"customer_email\": \"a@b.c\"}", Some(GORGIAS_TOKEN))
        .await;
    assert_eq!(res.status().as_u16(), 400);
    // A control character in an id is refused (PostgreSQL could not store it: a 503 would repeat).
    let res = app
        .post_gorgias(
            r#"{"ticket_id": 5, "customer_id": "12\u0000"}"#,
            Some(GORGIAS_TOKEN),
        )
        .await;
    assert_eq!(res.status().as_u16(), 400);
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_that_is_not_configured_answers_404() {
    let app = spawn_app(AppOptions {
        gorgias: false,
        ..Default::default()
    })
    .await;
    let res = app
        .post_gorgias(&gorgias_body(7, "gold@shop.test"), Some(GORGIAS_TOKEN))
        .await;
    assert_eq!(res.status().as_u16(), 404);
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_state_db_answers_503_with_retry_after() {
    let app = spawn_app(AppOptions::default()).await;
    // Point a second app at a PostgreSQL that is not there; it must start and refuse politely.
    let mut raw = app.raw.clone();
    raw.state.url = "postgres://postgres@127.0.0.1:1/nothing".into();
    raw.state.migrate_on_start = false;
    raw.state.connect_timeout = Duration::from_millis(500);
    let broken = ltv_tagger::app::Application::build(raw.validate().expect("valid"))
        .await
        .expect("builds");
    let port = broken.port();
    let stop = broken.shutdown_token();
    let task = tokio::spawn(broken.run_until_stopped());
    let body = trigger_body(1, "gold@shop.test", "");
    let res = crate::helpers::post_zendesk_to(
        &app.http,
        &format!("http://127.0.0.1:{port}"),
        &body,
        None,
    )
    .await
    .expect("request");
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let ready = app
        .http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 503);
    let json: serde_json::Value = ready.json().await.expect("json");
    assert!(
        json["state_db"]
            .as_str()
            .unwrap_or_default()
            .starts_with("down"),
        "{json}"
    );
    assert_eq!(json["order_db"], "ok");
    stop.cancel();
    let _ = task.await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_report_what_happened() {
    let app = spawn_app(AppOptions::default()).await;
    assert_eq!(
        app.http
            .get(format!("{}/livez", app.base))
            .send()
            .await
            .expect("livez")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16(),
        200
    );
    app.post_zendesk(&trigger_body(3, "gold@shop.test", ""), None)
        .await;
    app.post_gorgias(&gorgias_body(4, "gold@shop.test"), Some("bad"))
        .await;
    app.wait_for_audit(ltv_tagger::domain::Source::Zendesk, 3, 1)
        .await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "ltv_tagger_webhooks_received_total{outcome=\"accepted\",source=\"zendesk\"} 1",
        "ltv_tagger_webhooks_received_total{outcome=\"unauthorized\",source=\"gorgias\"} 1",
        "ltv_tagger_jobs_total{outcome=\"tagged\"} 1",
        "ltv_tagger_helpdesk_requests_total{helpdesk=\"zendesk\",status=\"200\"} 1",
        "ltv_tagger_order_lookup_seconds_count 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_too_slowly_gets_408_and_changes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(AppOptions {
        tweak: Box::new(|r| r.server.request_timeout = Duration::from_secs(1)),
        ..Default::default()
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    // The head and half of the promised body, then nothing.
    let head = format!(
        "POST /webhooks/gorgias HTTP/1.1\r\nHost: x\r\nX-Webhook-Token: {GORGIAS_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ticket_id\": 1,"
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_readyz_fails_but_webhooks_are_still_accepted() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(|r| r.server.drain_delay = Duration::from_secs(3)),
        ..Default::default()
    })
    .await;
    let ready = |app: &TestApp| {
        app.http
            .get(format!("{}/readyz?scope=ingest", app.base))
            .send()
    };
    assert_eq!(ready(&app).await.expect("readyz").status().as_u16(), 200);
    app.stop.cancel(); // as SIGTERM does
    crate::helpers::wait_until(
        Duration::from_secs(2),
        "readyz to report draining",
        || async {
            ready(&app)
                .await
                .map(|r| r.status().as_u16() == 503)
                .unwrap_or(false)
        },
    )
    .await;
    let res = app
        .post_zendesk(&trigger_body(12, "gold@shop.test", ""), None)
        .await;
    assert_eq!(res.status().as_u16(), 202, "still accepting while draining");
    assert_eq!(app.count("inbox").await, 1);
    app.stop().await;
}
