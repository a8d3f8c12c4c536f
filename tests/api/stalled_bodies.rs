//! Memory stays bounded against stalled bodies: 2,000 unauthenticated connections that each send
//! all but one byte of a maximum-size body and stall keep the service's RSS under 128 MiB, and
//! the memory comes back once they go. Measured on the built binary (`serve`), from /proc. A body
//! refused past the budget still gets its `503` + `Retry-After` before its connection closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{free_port, rig, spawn_app, AppOptions, Db, ServeProcess};

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("rss field")
}

/// The head of an unsigned Zendesk webhook that declares `len` body bytes.
fn head(len: usize) -> String {
    format!(
        "POST /webhooks/zendesk HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nX-Zendesk-Webhook-Signature: c2lnbmF0dXJl\r\n\
         X-Zendesk-Webhook-Signature-Timestamp: 2026-01-01T00:00:00Z\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_a_body_gets_503_with_retry_after_and_its_connection_is_closed() {
    const MAX_BODY: usize = 2048;
    let app = spawn_app(AppOptions {
        tweak: Box::new(|raw| {
            raw.server.max_body_bytes = MAX_BODY;
            raw.server.unverified_body_budget_bytes = MAX_BODY;
            raw.server.request_timeout = Duration::from_secs(60);
        }),
        ..AppOptions::default()
    })
    .await;
    // One stalled body holds the whole budget (its buffer is its declared length)...
    let mut holder = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let mut first = head(MAX_BODY).into_bytes();
    first.extend(std::iter::repeat_n(b'x', 100));
    holder.write_all(&first).await.expect("write");
    // ...so the next one is refused; the rest of its body is not read, the answer still comes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let mut s = TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect");
        let mut second = head(MAX_BODY).into_bytes();
        // Complete, so that if it does get the budget it is answered (401) and tried again.
        second.extend(std::iter::repeat_n(b'y', MAX_BODY));
        s.write_all(&second).await.expect("write");
        let mut answer = Vec::new();
        // Read to the end: the service closes the connection after the answer.
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(read.is_ok(), "connection left open after: {answer:?}");
        if answer.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
            break answer;
        }
        // The holder's body was not yet being read: try again.
    };
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 5"), "{answer}");
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(answer.contains("unverified_body_budget_bytes"), "{answer}");
    drop(holder);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_stalled_maximum_bodies_keep_rss_under_128_mib() {
    const CONNECTIONS: usize = 2000;
    const MAX_BODY: usize = 262_144;
    let r = rig(Db::Sqlite, |raw| {
        raw.server.max_body_bytes = MAX_BODY;
        // Long enough that every connection is still stalled when RSS is read.
        raw.server.request_timeout = Duration::from_secs(60);
    })
    .await;
    let log = r.dir.path().join("serve.log");
    let port = free_port();
    let p = ServeProcess::start(&r.config, port, &log, &[]).await;
    let pid = p.child.id().expect("pid");
    let before = rss_kib(pid, "VmRSS:");

    let mut body = head(MAX_BODY).into_bytes();
    body.extend(std::iter::repeat_n(b'x', MAX_BODY - 1));
    let body = Arc::new(body);
    let writers = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (body, writers) = (body.clone(), writers.clone());
        tasks.push(tokio::spawn(async move {
            let _turn = writers.acquire_owned().await.expect("semaphore");
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            // Refused connections are closed by the service: a failed or stuck write is fine.
            let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&body)).await;
            Some(s)
        }));
    }
    let mut open = Vec::with_capacity(CONNECTIONS);
    for t in tasks {
        if let Some(s) = t.await.expect("task") {
            open.push(s);
        }
    }
    // Let the service take in what it will (RSS stops moving), then read it.
    let mut stalled = rss_kib(pid, "VmRSS:");
    let settle = Instant::now() + Duration::from_secs(15);
    while Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = rss_kib(pid, "VmRSS:");
        if now.abs_diff(stalled) < 1024 {
            break;
        }
        stalled = now;
    }
    let peak = rss_kib(pid, "VmHWM:");
    println!(
        "{} connections stalled: RSS {} KiB before, {stalled} KiB stalled, peak {peak} KiB",
        open.len(),
        before
    );
    assert!(
        open.len() >= CONNECTIONS / 2,
        "only {} connected",
        open.len()
    );
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");

    // The attackers go: the memory comes back (polled, generous bound).
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = rss_kib(pid, "VmRSS:");
        if now < before + 48 * 1024 {
            println!("after they closed: RSS {now} KiB");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS stays at {now} KiB (was {before} KiB)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(p);
    r.drop_dbs().await;
}
