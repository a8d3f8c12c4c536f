//! A flood of idle sockets from one client (3,000 held open, each reopened as soon as the server
//! closes it) does not starve real deliveries: every signed webhook is answered within Zendesk's
//! 10 s. The server closes a socket that sends no request head within `server.head_timeout`, and
//! `server.max_connections` leaves room for the flood beside the deliveries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::helpers::{free_port, post_zendesk_to, rig, trigger_body, Db, ServeProcess};

const IDLE_SOCKETS: usize = 3000;
const DELIVERIES: u64 = 8;
/// Zendesk gives up on a webhook after about 10 s.
const ZENDESK_WAIT: Duration = Duration::from_secs(10);

/// Holds one idle socket open, reopening it whenever the server closes it, until `stop`.
async fn hold_idle(addr: String, stop: CancellationToken, reopened: Arc<AtomicUsize>) {
    while !stop.is_cancelled() {
        let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr));
        let mut socket = match connect.await {
            Ok(Ok(s)) => s,
            // Backlog full or refused: try again, as a reconnecting client would.
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut buf = [0u8; 64];
        tokio::select! {
            _ = stop.cancelled() => return,
            // Sends nothing; returns when the server closes the socket.
            _ = socket.read(&mut buf) => {
                reopened.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_answered_within_10s_under_a_flood_of_idle_sockets() {
    let r = rig(Db::Sqlite, |_| {}).await;
    let mut p =
        ServeProcess::start(&r.config, free_port(), &r.dir.path().join("serve.log"), &[]).await;
    let addr = p.base().trim_start_matches("http://").to_string();

    let stop = CancellationToken::new();
    let reopened = Arc::new(AtomicUsize::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..IDLE_SOCKETS {
        flood.spawn(hold_idle(addr.clone(), stop.clone(), reopened.clone()));
    }
    // Let the flood fill the server's slots first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Each delivery on a fresh connection, as Zendesk's would arrive.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(ZENDESK_WAIT)
        .build()
        .expect("client");
    let mut answers = Vec::new();
    for i in 0..DELIVERIES {
        let t0 = Instant::now();
        let body = trigger_body(9_100 + i, "gold@shop.test", "");
        let status = post_zendesk_to(&http, &p.base(), &body, None)
            .await
            .map(|r| r.status().as_u16());
        answers.push((i, status.map_err(|e| e.to_string()), t0.elapsed()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    stop.cancel();
    while flood.join_next().await.is_some() {}

    let reopened = reopened.load(Ordering::Relaxed);
    eprintln!("idle flood: {IDLE_SOCKETS} sockets, reopened {reopened} times; answers {answers:?}");
    for (i, status, took) in &answers {
        assert_eq!(
            status.as_ref().ok(),
            Some(&202),
            "delivery {i} was not accepted within {ZENDESK_WAIT:?} (took {took:?}): {status:?}"
        );
    }
    assert!(
        reopened > 0,
        "the server never closed an idle socket: the flood did not test the head timeout"
    );
    assert!(
        p.child.try_wait().expect("wait").is_none(),
        "the service stopped under the flood"
    );
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(30)).await.success());
    r.drop_dbs().await;
}
