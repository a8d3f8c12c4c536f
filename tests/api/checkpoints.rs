//! SQLite state: the write-ahead log is copied into the database file in the background, not by
//! the commit that holds a webhook (`state/checkpoint.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::helpers::{spawn_app, trigger_body, wait_until, AppOptions};

/// Inbox rows in the database file alone, read from a copy of it without its log: what a
/// checkpoint has moved there (`immutable`: the copy's log is not even looked for). `None` while a copy taken mid-checkpoint cannot be read.
async fn rows_in_the_file_alone(db: &Path, scratch: &Path) -> Option<i64> {
    let copy = scratch.join("copy.db");
    std::fs::copy(db, &copy).ok()?;
    let mut conn = SqliteConnectOptions::new()
        .filename(&copy)
        .immutable(true)
        .connect()
        .await
        .ok()?;
    let n = sqlx::query_scalar("select count(*) from inbox")
        .fetch_one(&mut conn)
        .await
        .ok();
    let _ = conn.close().await;
    n
}

#[tokio::test]
async fn acknowledged_webhooks_reach_the_sqlite_database_file_without_a_commit_checkpointing() {
    let app = spawn_app(AppOptions {
        gorgias: false,
        ..AppOptions::default()
    })
    .await;
    let db = PathBuf::from(
        app.state_db
            .url
            .strip_prefix("sqlite://")
            .expect("a SQLite state URL"),
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let before = rows_in_the_file_alone(&db, scratch.path())
        .await
        .unwrap_or(0);
    // 20 webhooks write a few hundred log pages: far below the 1,000 pages at which SQLite's
    // own checkpoint would run inside a commit (and the 8,192 of the writer's backstop here).
    for t in 0..20 {
        let res = app
            .post_zendesk(&trigger_body(4_100 + t, "gold@shop.test", ""), None)
            .await;
        assert_eq!(res.status().as_u16(), 202);
    }
    wait_until(
        Duration::from_secs(20),
        "the 20 acknowledged webhooks in the database file itself",
        || async { rows_in_the_file_alone(&db, scratch.path()).await == Some(before + 20) },
    )
    .await;
    app.stop().await;
}
