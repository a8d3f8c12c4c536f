//! `ltv-tagger healthcheck` without `--url`: it probes the port the configuration binds.

use std::time::Duration;

use crate::helpers::{binary, free_port, rig, Db, ServeProcess};

async fn healthcheck(config: &std::path::Path) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(binary())
        .args(["healthcheck", "--config"])
        .arg(config)
        .env_remove("LTV_TAGGER__SERVER__BIND")
        .output()
        .await
        .expect("run healthcheck");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_probes_the_port_server_bind_names_not_8080() {
    let r = rig(Db::Sqlite, |_| {}).await;
    let log = r.dir.path().join("serve.log");
    let port = free_port();
    let mut p = ServeProcess::start(&r.config, port, &log, &[]).await;

    // Only the bind is configured: the rest of the file (secrets included) is not needed.
    let live = r.dir.path().join("live.toml");
    std::fs::write(&live, format!("[server]\nbind = \"0.0.0.0:{port}\"\n")).expect("write");
    let (code, err) = healthcheck(&live).await;
    assert_eq!(code, Some(0), "healthcheck against {port} failed: {err}");

    // Another port: nothing answers there, and the message names the URL it tried.
    let other = free_port();
    let dead = r.dir.path().join("dead.toml");
    std::fs::write(&dead, format!("[server]\nbind = \"127.0.0.1:{other}\"\n")).expect("write");
    let (code, err) = healthcheck(&dead).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("http://127.0.0.1:{other}/livez")),
        "{err}"
    );

    // A bind that is not HOST:PORT is a configuration error (exit 2) naming the key.
    let bad = r.dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nbind = \"localhost\"\n").expect("write");
    let (code, err) = healthcheck(&bad).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("server.bind"), "{err}");

    p.signal("TERM");
    p.wait_exit(Duration::from_secs(15)).await;
    r.drop_dbs().await;
}
