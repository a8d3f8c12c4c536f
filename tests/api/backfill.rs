//! `ltv-tagger backfill zendesk|gorgias`: existing tickets listed through the helpdesk's API,
//! queued through the inbox within `backfill.budget_share`, resumed after a failure, dry run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fake_helpdesk::Helpdesk;

use crate::helpers::{
    binary, spawn_app, trigger_body, wait_until, write_test_config, AppOptions, Db, TestApp,
};

const DAY: Duration = Duration::from_secs(86_400);

/// The shop's customers as helpdesk users: 1 gold, 2 disputer, 3 small (no tag), 4 vip.
fn add_people(app: &TestApp, helpdesk: Helpdesk) {
    for (id, email) in [
        ("1", "gold@shop.test"),
        ("2", "disputer@shop.test"),
        ("3", "small@shop.test"),
        ("4", "pending@shop.test"),
    ] {
        match helpdesk {
            Helpdesk::Zendesk => app.fake.add_zendesk_user(id, email),
            Helpdesk::Gorgias => app.fake.add_gorgias_customer(id, email),
        }
    }
}

async fn run_cli(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(binary())
        .arg("--config")
        .arg(config)
        .arg("backfill")
        .args(args)
        .env("LTV_TAGGER__SERVER__LOG_LEVEL", "warn")
        .output()
        .await
        .expect("run ltv-tagger backfill")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn wait_tags(app: &TestApp, helpdesk: Helpdesk, ticket: u64, want: &[&str]) {
    wait_until(
        Duration::from_secs(30),
        &format!("tags on ticket {ticket}"),
        || async {
            let have = app.fake.tags(helpdesk, &ticket.to_string());
            want.iter().all(|w| have.iter().any(|h| h == w))
        },
    )
    .await;
}

#[tokio::test]
async fn backfill_queues_and_tags_the_open_zendesk_tickets_and_leaves_tagged_ones_alone() {
    let app = spawn_app(AppOptions::default()).await;
    add_people(&app, Helpdesk::Zendesk);
    let z = Helpdesk::Zendesk;
    app.fake.add_listed_ticket(z, 101, "open", "1", DAY);
    app.fake.add_listed_ticket(z, 102, "open", "2", DAY);
    app.fake.add_listed_ticket(z, 103, "open", "4", DAY);
    app.fake.set_ticket_tags(z, "103", &["vip"]);
    app.fake.add_listed_ticket(z, 104, "solved", "1", DAY);
    app.fake.add_listed_ticket(z, 105, "open", "1", 90 * DAY);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &app.raw, &Default::default());

    let out = run_cli(
        &config,
        &["zendesk", "--since", "30days", "--status", "open"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 tickets listed, 3 queued"),
        "{}",
        text(&out)
    );
    // Not a terminal: plain progress lines, with the total Zendesk counted.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("backfill: 3 of 3 tickets listed, 3 queued"),
        "{}",
        text(&out)
    );

    wait_tags(&app, z, 101, &["vip-gold"]).await;
    wait_tags(&app, z, 102, &["dispute"]).await;
    app.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(app.fake.tag_writes(z, "103"), 0, "already tagged: no write");
    assert!(app.fake.tags(z, "104").is_empty(), "solved: not listed");
    assert!(app.fake.tags(z, "105").is_empty(), "older than --since");
    app.fake.assert_no_violations();

    let again = run_cli(
        &config,
        &["zendesk", "--since", "30days", "--status", "open"],
    )
    .await;
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("had already finished"),
        "{}",
        text(&again)
    );
    app.stop().await;
}

#[tokio::test]
async fn backfill_queues_and_tags_the_open_gorgias_tickets_after_waiting_out_a_429() {
    let app = spawn_app(AppOptions::default()).await;
    add_people(&app, Helpdesk::Gorgias);
    let g = Helpdesk::Gorgias;
    app.fake.add_listed_ticket(g, 201, "open", "1", DAY);
    app.fake.add_listed_ticket(g, 202, "open", "4", DAY);
    app.fake.add_listed_ticket(g, 203, "closed", "1", DAY);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &app.raw, &Default::default());

    // The first page answers 429: the backfill waits it out and goes on.
    app.fake.fail_next(1, 429, Some(1));
    let out = run_cli(&config, &["gorgias"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(app.fake.count_status(429), 1, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 tickets listed, 2 queued"),
        "{}",
        text(&out)
    );
    wait_tags(&app, g, 201, &["vip-gold"]).await;
    wait_tags(&app, g, 202, &["vip"]).await;
    app.wait_idle(Duration::from_secs(30)).await;
    assert!(app.fake.tags(g, "203").is_empty(), "closed: not queued");
    app.fake.assert_no_violations();
    app.stop().await;
}

#[tokio::test]
async fn backfill_resumes_after_a_failed_page_without_writing_a_ticket_twice() {
    let app = spawn_app(AppOptions::default()).await;
    add_people(&app, Helpdesk::Zendesk);
    let z = Helpdesk::Zendesk;
    // Three pages of 100: the second fails on the first run.
    for id in 1..=250u64 {
        app.fake.add_listed_ticket(z, 1000 + id, "open", "1", DAY);
    }
    app.fake.fail_listing_page(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &app.raw, &Default::default());

    let first = run_cli(&config, &["zendesk"]).await;
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("run the same command again to resume"),
        "{}",
        text(&first)
    );
    assert_eq!(app.count("inbox").await, 100, "the first page was queued");
    let pages_before = app.fake.listing_pages_served();

    let second = run_cli(&config, &["zendesk"]).await;
    assert!(second.status.success(), "{}", text(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("(resumed): 150 tickets listed, 150 queued"),
        "{}",
        text(&second)
    );
    assert_eq!(
        app.fake.listing_pages_served() - pages_before,
        2,
        "the rerun starts at the failed page"
    );
    app.wait_idle(Duration::from_secs(60)).await;
    for id in 1..=250u64 {
        let t = (1000 + id).to_string();
        assert_eq!(app.fake.tag_writes(z, &t), 1, "ticket {t} written once");
        assert_eq!(app.fake.tags(z, &t), vec!["vip-gold".to_string()]);
    }
    assert_eq!(app.count("inbox").await, 250);
    app.stop().await;
}

#[tokio::test]
async fn backfill_dry_run_counts_the_tags_and_writes_nothing() {
    let app = spawn_app(AppOptions::default()).await;
    add_people(&app, Helpdesk::Zendesk);
    let z = Helpdesk::Zendesk;
    app.fake.add_listed_ticket(z, 301, "open", "1", DAY);
    app.fake.add_listed_ticket(z, 302, "open", "1", DAY);
    app.fake.add_listed_ticket(z, 303, "open", "2", DAY);
    app.fake.add_listed_ticket(z, 304, "open", "3", DAY);
    app.fake.add_listed_ticket(z, 305, "open", "4", DAY);
    app.fake.set_ticket_tags(z, "305", &["vip"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &app.raw, &Default::default());

    let out = run_cli(&config, &["zendesk", "--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("5 tickets listed, nothing written"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("2 would get vip-gold"), "{}", text(&out));
    assert!(stdout.contains("1 would get dispute"), "{}", text(&out));
    assert!(stdout.contains("2 would get no new tag"), "{}", text(&out));

    for table in ["inbox", "job", "backfill_cursor"] {
        assert_eq!(app.count(table).await, 0, "{table} rows after a dry run");
    }
    let writes: Vec<_> = app
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(
        writes.is_empty(),
        "no write reached the helpdesk: {writes:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn backfill_stays_within_its_budget_share_while_live_webhooks_are_tagged() {
    // 1,200 requests a minute: the backfill may use half, 10 a second after a burst of 20.
    let app = spawn_app(AppOptions {
        tweak: Box::new(|raw| {
            raw.zendesk.requests_per_minute = 1200;
            raw.backfill.budget_share = 0.5;
        }),
        ..AppOptions::default()
    })
    .await;
    add_people(&app, Helpdesk::Zendesk);
    let z = Helpdesk::Zendesk;
    let backfilled: Vec<u64> = (1..=80).map(|i| 5000 + i).collect();
    for id in &backfilled {
        app.fake.add_listed_ticket(z, *id, "open", "1", DAY);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &app.raw, &Default::default());
    let run = tokio::spawn({
        let config = config.clone();
        async move { run_cli(&config, &["zendesk"]).await }
    });

    // Live tickets keep flowing while the backfill runs.
    wait_until(
        Duration::from_secs(30),
        "the backfill's first tags",
        || async { app.fake.tag_writes(z, "5001") > 0 },
    )
    .await;
    for live in 9001..=9005u64 {
        let r = app
            .post_zendesk(&trigger_body(live, "gold@shop.test", ""), None)
            .await;
        assert_eq!(r.status().as_u16(), 202);
    }
    for live in 9001..=9005u64 {
        wait_tags(&app, z, live, &["vip-gold"]).await;
    }
    let out = run.await.expect("backfill task");
    assert!(out.status.success(), "{}", text(&out));
    app.wait_idle(Duration::from_secs(60)).await;

    // By the fake's own clock: the live tickets were tagged before the backfill's last write,
    // and the backfill's calls (listing and writes) came no faster than its share allows.
    let requests = app.fake.requests();
    let is_backfill = |path: &str| {
        path.starts_with("/api/v2/search/")
            || path.starts_with("/api/v2/users/show_many")
            || backfilled
                .iter()
                .any(|id| path == format!("/api/v2/tickets/{id}/tags"))
    };
    let backfill_at: Vec<_> = requests
        .iter()
        .filter(|r| is_backfill(&r.path))
        .map(|r| r.at)
        .collect();
    let live_at: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/tickets/900"))
        .map(|r| r.at)
        .collect();
    let (first, last) = (backfill_at[0], backfill_at[backfill_at.len() - 1]);
    assert!(
        live_at.iter().all(|t| *t < last),
        "live tickets waited for the backfill to finish"
    );
    let span = (last - first).as_secs_f64();
    // share × 1,200/min = 10/s after a burst of 20; the whole account allows 20/s.
    let calls_past_burst = backfill_at.len().saturating_sub(20) as f64;
    assert!(
        calls_past_burst / span.max(0.001) <= 10.0 * 1.25,
        "{} backfill calls in {span:.2}s: over its share",
        backfill_at.len()
    );
    assert_eq!(app.fake.rate_limited(), 0);
    app.stop().await;
}

#[tokio::test]
async fn backfill_killed_mid_way_on_postgresql_resumes_without_queueing_or_writing_a_ticket_twice()
{
    // 12,000 a minute, a quarter for the backfill: 50 tickets a second, so a kill lands mid-run.
    let app = spawn_app(AppOptions {
        state: Db::Postgres,
        tweak: Box::new(|raw| {
            raw.zendesk.requests_per_minute = 12_000;
            raw.backfill.budget_share = 0.25;
        }),
        ..AppOptions::default()
    })
    .await;
    add_people(&app, Helpdesk::Zendesk);
    let z = Helpdesk::Zendesk;
    for id in 1..=250u64 {
        app.fake.add_listed_ticket(z, 7000 + id, "open", "1", DAY);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &app.raw, &Default::default());

    let mut child = tokio::process::Command::new(binary())
        .arg("--config")
        .arg(&config)
        .args(["backfill", "zendesk"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn backfill");
    wait_until(
        Duration::from_secs(60),
        "the second page being queued",
        || async { app.count("inbox").await > 120 },
    )
    .await;
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("wait");
    assert!(!status.success(), "killed, not finished: {status:?}");
    let queued_before = app.count("inbox").await;
    assert!(
        queued_before < 250,
        "the kill landed mid-way: {queued_before}"
    );

    let rerun = run_cli(&config, &["zendesk"]).await;
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert!(
        String::from_utf8_lossy(&rerun.stdout).contains("finished (resumed)"),
        "{}",
        text(&rerun)
    );
    app.wait_idle(Duration::from_secs(60)).await;
    assert_eq!(app.count("inbox").await, 250, "each ticket queued once");
    for id in 1..=250u64 {
        let t = (7000 + id).to_string();
        assert_eq!(app.fake.tag_writes(z, &t), 1, "ticket {t} written once");
    }
    app.stop().await;
}
