//! Hot reload of the running binary: a threshold edited in the `--config` file (or re-read on
//! `SIGHUP`) decides the next ticket, with no restart; an invalid edit keeps the old policy and the
//! service up; `SIGHUP` never stops the process.

use std::path::Path;
use std::time::Duration;

use ltv_tagger::domain::{Source, TicketId};
use ltv_tagger::state::StateStore;

use crate::helpers::{free_port, post_zendesk_to, rig, trigger_body, wait_until, Db, ServeProcess};

const WITHIN: Duration = Duration::from_secs(60);

async fn reloads(base: &str, result: &str) -> u64 {
    let text = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    let prefix = format!("ltv_tagger_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Posts a ticket for pending@shop.test (LTV 600) and returns the outcome recorded for it.
async fn decide(p: &ServeProcess, store: &StateStore, ticket: u64) -> String {
    let http = reqwest::Client::new();
    let res = post_zendesk_to(
        &http,
        &p.base(),
        &trigger_body(ticket, "pending@shop.test", ""),
        None,
    )
    .await
    .expect("post");
    assert_eq!(res.status().as_u16(), 202, "no webhook is refused");
    let id = TicketId::parse(&ticket.to_string()).expect("ticket id");
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let rows = store
            .audit(Some((Source::Zendesk, id)), 10)
            .await
            .unwrap_or_default();
        if let Some(row) = rows.last() {
            return row.record.outcome.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ticket {ticket} was never decided"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read config");
    assert!(text.contains(from), "{from:?} not in the config:\n{text}");
    std::fs::write(path, text.replacen(from, to, 1)).expect("write config");
}

fn log(p: &ServeProcess) -> String {
    std::fs::read_to_string(&p.log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_edited_in_the_config_file_decides_the_next_ticket_without_a_restart() {
    let r = rig(Db::Sqlite, |_| {}).await;
    let mut p =
        ServeProcess::start(&r.config, free_port(), &r.dir.path().join("serve.log"), &[]).await;
    assert_eq!(decide(&p, &r.store, 1).await, "tagged", "600 ≥ 500 → vip");

    let text = std::fs::read_to_string(&r.config).expect("config");
    let concurrency = text
        .lines()
        .find(|l| l.starts_with("concurrency = "))
        .expect("worker.concurrency line")
        .to_owned();
    edit(&r.config, "min_ltv = \"500\"", "min_ltv = \"700\"");
    edit(&r.config, &concurrency, "concurrency = 3");
    wait_until(WITHIN, "the edited file to be reloaded", || async {
        reloads(&p.base(), "ok").await >= 1
    })
    .await;
    assert_eq!(
        decide(&p, &r.store, 2).await,
        "no_tags",
        "600 < 700: no VIP tag"
    );
    assert!(r
        .fake
        .tags(fake_helpdesk::Helpdesk::Zendesk, "2")
        .is_empty());
    assert!(
        log(&p).contains("worker.concurrency"),
        "the restart-only key is named:\n{}",
        log(&p)
    );

    // An invalid edit: the old policy (700) keeps running and the error names the key.
    edit(&r.config, "min_ltv = \"700\"", "min_ltv = 7.5");
    wait_until(WITHIN, "the invalid edit to be counted", || async {
        reloads(&p.base(), "error").await >= 1
    })
    .await;
    // The counter goes up just before the error line is written: wait for the line too.
    wait_until(WITHIN, "the reload error naming the key", || async {
        log(&p).contains("policy.vip_tiers[0].min_ltv")
    })
    .await;
    assert_eq!(
        decide(&p, &r.store, 3).await,
        "no_tags",
        "the 700 threshold still holds"
    );
    assert!(
        p.child.try_wait().expect("wait").is_none(),
        "the service stays up"
    );
    assert_eq!(reloads(&p.base(), "ok").await, 1);
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(30)).await.success());
    r.drop_dbs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_config_and_never_stops_the_process() {
    let r = rig(Db::Sqlite, |_| {}).await;
    // The watched path is a symlink to a file elsewhere: editing the target sends the watcher
    // nothing, so only SIGHUP can reload it.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let target = elsewhere.path().join("real.toml");
    std::fs::rename(&r.config, &target).expect("move config");
    std::os::unix::fs::symlink(&target, &r.config).expect("symlink");
    let mut p =
        ServeProcess::start(&r.config, free_port(), &r.dir.path().join("serve.log"), &[]).await;
    assert_eq!(decide(&p, &r.store, 11).await, "tagged");

    edit(&target, "min_ltv = \"500\"", "min_ltv = \"700\"");
    p.signal("HUP");
    wait_until(WITHIN, "the SIGHUP reload", || async {
        reloads(&p.base(), "ok").await >= 1
    })
    .await;
    assert_eq!(decide(&p, &r.store, 12).await, "no_tags");
    // Signals sent together coalesce into one: send each after the previous reload.
    for n in 2..=4 {
        p.signal("HUP");
        wait_until(WITHIN, "another SIGHUP reload", || async {
            reloads(&p.base(), "ok").await >= n
        })
        .await;
    }
    assert!(
        p.child.try_wait().expect("wait").is_none(),
        "SIGHUP stopped the process"
    );
    p.signal("TERM");
    assert!(
        p.wait_exit(Duration::from_secs(30)).await.success(),
        "SIGTERM still drains and exits 0"
    );
    r.drop_dbs().await;
}
