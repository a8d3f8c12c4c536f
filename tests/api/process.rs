//! The built binary, driven the way an operator drives it: `serve`, signals, `jobs`, `check-config`.

use std::time::Duration;

use fake_helpdesk::Helpdesk;

use crate::helpers::{
    binary, cli, free_port, post_zendesk_to, rig, trigger_body, wait_until, Db, ServeProcess,
    GORGIAS_TOKEN, ZENDESK_SECRET,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queued_at_a_sigkill_all_complete_after_a_restart() {
    let r = rig(Db::Sqlite, |_| {}).await;
    // A slow helpdesk keeps jobs queued and in flight when the process dies.
    r.fake.set_latency(Duration::from_millis(200));
    let log = r.dir.path().join("serve.log");
    let mut p = ServeProcess::start(&r.config, free_port(), &log, &[]).await;
    let http = reqwest::Client::new();
    const N: u64 = 40;
    for t in 1..=N {
        let res = post_zendesk_to(
            &http,
            &p.base(),
            &trigger_body(1000 + t, "gold@shop.test", ""),
            Some(&format!("inv-{t}")),
        )
        .await
        .expect("post");
        assert_eq!(res.status().as_u16(), 202);
    }
    p.sigkill();
    p.wait_exit(Duration::from_secs(5)).await;
    let done_before = r.store.audit(None, 1000).await.expect("audit").len();
    assert!(
        done_before < N as usize,
        "the kill came too late to prove anything"
    );

    let mut p = ServeProcess::start(&r.config, free_port(), &log, &[]).await;
    wait_until(
        Duration::from_secs(60),
        "every ticket to be recorded",
        || async {
            r.store
                .audit(None, 1000)
                .await
                .map(|a| a.len())
                .unwrap_or(0)
                >= N as usize
        },
    )
    .await;
    for t in 1..=N {
        assert_eq!(
            r.fake.tags(Helpdesk::Zendesk, &(1000 + t).to_string()),
            ["vip-gold"],
            "ticket {}",
            1000 + t
        );
    }
    let writes: usize = (1..=N)
        .map(|t| {
            r.fake
                .tag_writes(Helpdesk::Zendesk, &(1000 + t).to_string())
        })
        .sum();
    println!("SIGKILL with {N} queued: {done_before} done before the kill, {} duplicate writes after restart", writes - N as usize);
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_ever_reaches_the_log() {
    let r = rig(Db::Sqlite, |raw| {
        raw.server.log_level = "debug".into();
        // A wrong API token, so the helpdesk answers 401 and errors get logged.
    })
    .await;
    let log = r.dir.path().join("serve.log");
    let mut p = ServeProcess::start(
        &r.config,
        free_port(),
        &log,
        &[("LTV_TAGGER__ZENDESK__API_TOKEN", "wrong-token-zz9")],
    )
    .await;
    let http = reqwest::Client::new();
    post_zendesk_to(
        &http,
        &p.base(),
        &trigger_body(5, "gold@shop.test", ""),
        None,
    )
    .await
    .expect("post");
    // A forged request and a wrong Gorgias token too.
    http.post(format!("{}/webhooks/zendesk", p.base()))
        .header("X-Zendesk-Webhook-Signature", "AAAA")
        .header("X-Zendesk-Webhook-Signature-Timestamp", "x")
        .body("{}")
        .send()
        .await
        .expect("post");
    http.post(format!("{}/webhooks/gorgias", p.base()))
        .header("X-Webhook-Token", "nope")
        .body("{}")
        .send()
        .await
        .expect("post");
    wait_until(
        Duration::from_secs(20),
        "the job to be dead-lettered",
        || async {
            r.store
                .list_jobs(true, 10)
                .await
                .map(|j| j.len())
                .unwrap_or(0)
                == 1
        },
    )
    .await;
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(15)).await;
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("job dead-lettered"),
        "the log should show what happened:\n{text}"
    );
    for secret in [
        "wrong-token-zz9",
        r.cfg.zendesk_token.as_str(),
        ZENDESK_SECRET,
        GORGIAS_TOKEN,
        r.cfg.gorgias_key.as_str(),
    ] {
        assert!(!text.contains(secret), "secret {secret:?} found in the log");
    }
    // Nor in check-config's output.
    let (code, out, err) = cli(&["check-config"], &r.config).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[REDACTED]"));
    for secret in [r.cfg.zendesk_token.as_str(), ZENDESK_SECRET, GORGIAS_TOKEN] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "secret {secret:?} printed by check-config"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_retried_from_the_cli_lands() {
    let r = rig(Db::Sqlite, |raw| {
        raw.worker.retry_horizon = Duration::from_secs(1)
    })
    .await;
    let log = r.dir.path().join("serve.log");
    r.fake.fail_for(Duration::from_secs(3600), 503);
    let mut p = ServeProcess::start(&r.config, free_port(), &log, &[]).await;
    let http = reqwest::Client::new();
    post_zendesk_to(
        &http,
        &p.base(),
        &trigger_body(77, "almost@shop.test", ""),
        None,
    )
    .await
    .expect("post");
    wait_until(Duration::from_secs(20), "a dead letter", || async {
        r.store
            .list_jobs(true, 10)
            .await
            .map(|j| j.len())
            .unwrap_or(0)
            == 1
    })
    .await;

    let (code, out, _) = cli(&["jobs", "list", "--dead"], &r.config).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("77") && out.contains("dead") && out.contains("503"),
        "{out}"
    );

    r.fake.fail_for(Duration::ZERO, 503);
    let (code, out, err) = cli(&["jobs", "retry", "--all-dead"], &r.config).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 job(s) queued again"), "{out}");
    wait_until(Duration::from_secs(20), "the tag", || async {
        r.fake.tags(Helpdesk::Zendesk, "77") == ["vip"]
    })
    .await;
    // The tag is at the helpdesk before the job's audit row is written: wait for the row.
    wait_until(Duration::from_secs(20), "the second audit row", || async {
        r.store.audit(None, 10).await.map(|a| a.len()).unwrap_or(0) >= 2
    })
    .await;
    let audit = r.store.audit(None, 10).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .map(|a| a.record.outcome.as_str())
            .collect::<Vec<_>>(),
        ["dead", "tagged"]
    );
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[orders]\nurl = \"sqlite://x.db\"\n[policy]\nvip_tiers = [{ tag = \"vip\", min_ltv = \"lots\" }]\n[zendesk]\nsubdomain = \"acme\"\n").expect("write");
    for cmd in [&["serve"][..], &["check-config"]] {
        let (code, _, err) = cli(cmd, &path).await;
        assert_eq!(code, 2, "{cmd:?}: {err}");
        for key in [
            "policy.vip_tiers[0].min_ltv",
            "zendesk.api_token",
            "zendesk.webhook_secret",
            "zendesk.email",
        ] {
            assert!(err.contains(key), "{cmd:?}: {key} not named in:\n{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_only_against_a_live_server() {
    let r = rig(Db::Sqlite, |_| {}).await;
    let log = r.dir.path().join("serve.log");
    let mut p = ServeProcess::start(&r.config, free_port(), &log, &[]).await;
    let url = format!("{}/livez", p.base());
    let ok = tokio::process::Command::new(binary())
        .args(["healthcheck", "--url", &url])
        .status()
        .await
        .expect("run");
    assert!(ok.success());
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(15)).await;
    let dead = tokio::process::Command::new(binary())
        .args(["healthcheck", "--url", &url])
        .output()
        .await
        .expect("run");
    assert_eq!(dead.status.code(), Some(1));
    r.drop_dbs().await;
}
