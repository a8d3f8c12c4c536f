//! A dependency that cannot be reached is named with what happened (connection refused, DNS…),
//! in the job's last error an operator reads with `ltv-tagger jobs list`, never a bare
//! "pool timed out" or "error sending request".

use std::time::{Duration, Instant};

use crate::helpers::{free_port, spawn_app, trigger_body, AppOptions, TestApp};

/// Waits for the job's first recorded error and returns it.
async fn last_error(app: &TestApp) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = app.store.list_jobs(false, 10).await.expect("jobs");
        if let Some(e) = jobs.iter().find_map(|j| j.last_error.clone()) {
            return e;
        }
        assert!(Instant::now() < deadline, "no job error recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_refusing_connections_is_reported_as_connection_refused() {
    let closed = free_port();
    let app = spawn_app(AppOptions {
        gorgias: false,
        tweak: Box::new(move |raw| {
            raw.zendesk.api_base_url = format!("http://127.0.0.1:{closed}");
        }),
        ..AppOptions::default()
    })
    .await;
    let r = app
        .post_zendesk(&trigger_body(701, "gold@shop.test", ""), None)
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let error = last_error(&app).await;
    assert!(error.contains("connection refused"), "{error}");
    assert!(!error.contains("error sending request"), "{error}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_db_refusing_connections_is_reported_as_connection_refused_not_pool_timed_out() {
    let closed = free_port();
    let app = spawn_app(AppOptions {
        gorgias: false,
        tweak: Box::new(move |raw| {
            raw.orders.url = format!("postgres://reader@127.0.0.1:{closed}/shop");
            raw.orders.query_timeout = Duration::from_secs(1);
        }),
        ..AppOptions::default()
    })
    .await;
    let r = app
        .post_zendesk(&trigger_body(702, "gold@shop.test", ""), None)
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let error = last_error(&app).await;
    assert!(error.contains("connection refused"), "{error}");
    assert!(!error.contains("pool timed out"), "{error}");
    assert!(!error.contains("did not answer within"), "{error}");
    app.stop().await;
}
