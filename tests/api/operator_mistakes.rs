//! Operator mistakes that used to look like success: `serve` and `check-config` both refuse them
//! at start (exit 2) with a message naming the key, and never echo a secret.

use std::path::Path;
use std::time::Duration;

use crate::helpers::binary;

const SECRET: &str = "hunter2-very-secret";

/// A valid configuration; `replace` swaps lines of it, `append` adds some.
fn config(dir: &Path, replace: &[(&str, &str)], append: &str) -> std::path::PathBuf {
    let mut text = format!(
        "[state]\nurl = \"sqlite://{}/state.db\"\n[orders]\nurl = \"sqlite://{}/shop.db\"\n\
         [zendesk]\nsubdomain = \"acme\"\nemail = \"agent@acme.test\"\napi_token = \"{SECRET}\"\n\
         webhook_secret = \"whsec-{SECRET}\"\n",
        dir.display(),
        dir.display()
    );
    for (from, to) in replace {
        assert!(text.contains(from), "{from} not in the base config");
        text = text.replace(from, to);
    }
    text.push_str(append);
    let path = dir.join(format!("c{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).expect("write");
    path
}

/// Runs `ltv-tagger CMD --config FILE` with `env`; (exit code, stderr).
async fn run(cmd: &str, file: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut c = tokio::process::Command::new(binary());
    c.arg(cmd).arg("--config").arg(file).kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd} did not stop at start"))
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Both commands refuse `file` with exit 2, name `key`, and print no secret.
async fn both_refuse(file: &Path, env: &[(&str, &str)], key: &str) {
    for cmd in ["check-config", "serve"] {
        let (code, out) = run(cmd, file, env).await;
        assert_eq!(code, 2, "{cmd} should refuse ({key}):\n{out}");
        assert!(out.contains(key), "{cmd}: {key} not named in:\n{out}");
        assert!(!out.contains("hunter2"), "{cmd} echoed a secret:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_sqlite_state_store_is_refused_by_serve_and_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_line = format!("url = \"sqlite://{}/state.db\"", dir.path().display());
    for url in ["sqlite://", "sqlite://?mode=memory", "sqlite://:memory:"] {
        let f = config(
            dir.path(),
            &[(&state_line, &format!("url = \"{url}\""))],
            "",
        );
        both_refuse(&f, &[], "state.url").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_base_url_with_a_path_is_refused_instead_of_writing_to_a_doubled_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = config(
        dir.path(),
        &[("subdomain = \"acme\"", "api_base_url = \"https://acme.zendesk.com/api/v2\"")],
        "[gorgias]\napi_base_url = \"https://acme.gorgias.com/api/\"\nemail = \"a@acme.test\"\napi_key = \"k\"\nwebhook_token = \"t\"\n",
    );
    both_refuse(&f, &[], "zendesk.api_base_url").await;
    let (_, out) = run("check-config", &f, &[]).await;
    assert!(out.contains("gorgias.api_base_url"), "{out}");
    assert!(out.contains("has a path"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_url_beside_a_url_file_is_refused_not_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = dir.path().join("orders_url");
    std::fs::write(
        &url_file,
        format!("sqlite://{}/shop.db\n", dir.path().display()),
    )
    .expect("write");
    let orders_line = format!("url = \"sqlite://{}/shop.db\"", dir.path().display());
    let f = config(
        dir.path(),
        &[(
            &orders_line,
            &format!("url_file = {:?}", url_file.display().to_string()),
        )],
        "",
    );
    let (code, out) = run("check-config", &f, &[]).await;
    assert_eq!(code, 0, "url_file alone is valid:\n{out}");
    let env = [(
        "LTV_TAGGER__ORDERS__URL",
        "postgres://reader:hunter2@db/shop",
    )];
    both_refuse(
        &f,
        &env,
        "orders.url / orders.url_file: set one of them, not both",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_secrets_that_are_only_whitespace_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = config(
        dir.path(),
        &[(
            &format!("api_token = \"{SECRET}\""),
            "api_token = \"  \\t \"",
        )],
        "",
    );
    both_refuse(&f, &[], "zendesk.api_token: is only whitespace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_url_without_a_scheme_or_a_toml_error_on_a_secret_line_is_reported_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_line = format!("url = \"sqlite://{}/state.db\"", dir.path().display());
    let f = config(
        dir.path(),
        &[(&state_line, &format!("url = \"reader:{SECRET}@db/state\""))],
        "",
    );
    both_refuse(&f, &[], "state.url").await;
    for broken in [
        format!("api_token = \"{SECRET}"),
        format!("api_token = {SECRET}"),
    ] {
        let f = config(
            dir.path(),
            &[(&format!("api_token = \"{SECRET}\""), &broken)],
            "",
        );
        both_refuse(&f, &[], "TOML syntax error at line 8").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_address_serve_cannot_use_is_refused_by_check_config_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bind in ["0.0.0.0:99999", "0.0.0.0:http", "0.0.0.0", "127.0.0.1:-1"] {
        let f = config(dir.path(), &[], &format!("[server]\nbind = \"{bind}\"\n"));
        both_refuse(&f, &[], "server.bind").await;
    }
}
