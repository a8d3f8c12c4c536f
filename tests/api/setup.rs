//! `ltv-tagger setup zendesk|gorgias`, the real binary against the fake helpdesk's admin routes
//! (which check auth, verb, path and body shape): what it creates, that a second run changes
//! nothing, dry runs, error answers, and that secrets stay out of the output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig};
use ltv_tagger::config::RawSettings;
use ltv_tagger::setup::{TRIGGER_BODY, TRIGGER_TITLE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::helpers::{write_config, GORGIAS_TOKEN};

const PUBLIC_URL: &str = "https://tagger.example.com";

struct Rig {
    fake: FakeHelpdesk,
    cfg: FakeHelpdeskConfig,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        let cfg = FakeHelpdeskConfig::default();
        let fake = FakeHelpdesk::start(cfg.clone())
            .await
            .expect("fake helpdesk");
        Rig {
            fake,
            cfg,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A config with the given helpdesk's API credentials (no order DB: setup reads none).
    fn config(&self, tweak: impl FnOnce(&mut RawSettings)) -> PathBuf {
        let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load");
        raw.state.url = format!("sqlite://{}", self.dir.path().join("state.db").display());
        tweak(&mut raw);
        let mut secrets: Vec<(&str, &str, String)> = Vec::new();
        for (section, key, value) in [
            ("zendesk", "api_token", raw.zendesk.api_token.clone()),
            (
                "zendesk",
                "webhook_secret",
                raw.zendesk.webhook_secret.clone(),
            ),
            ("gorgias", "api_key", raw.gorgias.api_key.clone()),
            (
                "gorgias",
                "webhook_token",
                raw.gorgias.webhook_token.clone(),
            ),
        ] {
            if !value.expose_secret().is_empty() {
                secrets.push((section, key, value.expose_secret().to_owned()));
            }
        }
        let secrets: Vec<(&str, &str, &str)> = secrets
            .iter()
            .map(|(s, k, v)| (*s, *k, v.as_str()))
            .collect();
        write_config(self.dir.path(), &raw, &secrets)
    }

    /// Zendesk credentials of the fake, no webhook secret configured yet.
    fn zendesk(&self) -> PathBuf {
        self.config(|raw| {
            self.fake.serve_zendesk_for(raw, &self.cfg, "");
        })
    }

    fn gorgias(&self, token: &str) -> PathBuf {
        self.config(|raw| {
            self.fake.serve_gorgias_for(raw, &self.cfg, token);
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn setup(config: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(crate::helpers::binary())
        .arg("setup")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ltv-tagger setup");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn setup_zendesk_creates_webhook_secret_and_trigger_and_a_second_run_changes_nothing() {
    let rig = Rig::new().await;
    let config = rig.zendesk();
    let secret_file = rig.path("zendesk_webhook_secret");
    let secret_arg = secret_file.display().to_string();
    let args = [
        "zendesk",
        "--public-url",
        PUBLIC_URL,
        "--secret-out",
        &secret_arg,
    ];

    let first = setup(&config, &args).await;
    assert_eq!(first.code, Some(0), "{}\n{}", first.stdout, first.stderr);

    let webhooks = rig.fake.zendesk_webhooks();
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    let webhook = &webhooks[0];
    let id = webhook["id"].as_str().expect("webhook id").to_owned();
    assert_eq!(webhook["name"], "ltv-tagger");
    assert_eq!(
        webhook["endpoint"],
        "https://tagger.example.com/webhooks/zendesk"
    );
    assert_eq!(webhook["http_method"], "POST");
    assert_eq!(webhook["request_format"], "json");
    assert_eq!(webhook["status"], "active");
    assert_eq!(
        webhook["subscriptions"],
        json!(["conditional_ticket_events"])
    );

    let secret = rig.fake.zendesk_signing_secret(&id).expect("secret");
    assert_eq!(
        std::fs::read_to_string(&secret_file).expect("secret file"),
        secret
    );
    assert_eq!(mode(&secret_file), 0o600);
    assert!(!first.stdout.contains(&secret) && !first.stderr.contains(&secret));

    let triggers = rig.fake.zendesk_triggers();
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    let trigger = &triggers[0];
    assert_eq!(trigger["title"], TRIGGER_TITLE);
    let all = trigger["conditions"]["all"].as_array().expect("all");
    assert!(all.contains(&json!({"field": "update_type", "operator": "is", "value": "Create"})));
    assert!(all.contains(
        &json!({"field": "current_tags", "operator": "not_includes", "value": "dispute vip vip-gold"})
    ));
    assert_eq!(
        trigger["actions"],
        json!([{ "field": "notification_webhook", "value": [id, TRIGGER_BODY] }])
    );

    assert!(first.stdout.contains(&format!("created: webhook \"ltv-tagger\" → https://tagger.example.com/webhooks/zendesk (id {id}) — Admin Center → Apps and integrations → Actions and webhooks → Webhooks")), "{}", first.stdout);
    assert!(
        first
            .stdout
            .contains("created: trigger \"ltv-tagger: new ticket\""),
        "{}",
        first.stdout
    );
    rig.fake.assert_no_violations();
    let writes = rig.fake.admin_writes();
    assert_eq!(writes, 2);

    // Again, now with the secret configured: nothing is written, and the secret matches.
    let config = rig.config(|raw| {
        rig.fake.serve_zendesk_for(raw, &rig.cfg, "");
        raw.zendesk.webhook_secret_file = Some(secret_file.clone());
    });
    let second = setup(&config, &args).await;
    assert_eq!(second.code, Some(0), "{}\n{}", second.stdout, second.stderr);
    assert_eq!(rig.fake.admin_writes(), writes, "{}", second.stdout);
    assert!(
        second.stdout.contains("unchanged: webhook"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("unchanged: trigger"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("unchanged: signing secret"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains("matches this webhook's signing secret"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("nothing changed"),
        "{}",
        second.stdout
    );

    // A new public URL updates the webhook in place; the trigger stays.
    let moved = setup(
        &config,
        &["zendesk", "--public-url", "https://new.example.com"],
    )
    .await;
    assert_eq!(moved.code, Some(0), "{}\n{}", moved.stdout, moved.stderr);
    assert!(
        moved.stdout.contains("updated: webhook"),
        "{}",
        moved.stdout
    );
    assert!(
        moved.stdout.contains("unchanged: trigger"),
        "{}",
        moved.stdout
    );
    assert!(
        moved.stdout.contains("signing secret: not shown"),
        "{}",
        moved.stdout
    );
    let webhooks = rig.fake.zendesk_webhooks();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(
        webhooks[0]["endpoint"],
        "https://new.example.com/webhooks/zendesk"
    );
    assert_eq!(rig.fake.zendesk_triggers().len(), 1);
    rig.fake.assert_no_violations();
}

#[tokio::test]
async fn setup_zendesk_dry_run_reads_only_and_prints_every_write() {
    let rig = Rig::new().await;
    let secret_file = rig.path("never_written");
    let secret_arg = secret_file.display().to_string();
    let run = setup(
        &rig.zendesk(),
        &[
            "zendesk",
            "--public-url",
            PUBLIC_URL,
            "--dry-run",
            "--secret-out",
            &secret_arg,
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(rig.fake.admin_writes(), 0);
    assert!(rig.fake.zendesk_webhooks().is_empty());
    assert!(!secret_file.exists());
    let methods: Vec<String> = rig
        .fake
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
    for expected in [
        "GET /api/v2/webhooks?filter%5Bname_contains%5D=ltv-tagger",
        "POST /api/v2/webhooks",
        "\"endpoint\": \"https://tagger.example.com/webhooks/zendesk\"",
        "GET /api/v2/webhooks/{id}/signing_secret   (not sent in a dry run",
        "POST /api/v2/triggers",
        "<id of the webhook created above>",
        "would create: webhook \"ltv-tagger\"",
        "would create: trigger",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected}\n---\n{}",
            run.stdout
        );
    }
}

#[tokio::test]
async fn setup_zendesk_error_answer_reports_what_was_already_created() {
    let rig = Rig::new().await;
    let config = rig.zendesk();
    rig.fake.fail_admin("POST", "/api/v2/triggers", 422);
    let failed = setup(&config, &["zendesk", "--public-url", PUBLIC_URL]).await;
    assert_eq!(failed.code, Some(1), "{}\n{}", failed.stdout, failed.stderr);
    let id = rig.fake.zendesk_webhooks()[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(
        failed.stderr.contains("POST /api/v2/triggers"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("HTTP 422"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("done before the error"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains(&format!("created: webhook \"ltv-tagger\" → https://tagger.example.com/webhooks/zendesk (id {id})")),
        "{}",
        failed.stderr
    );
    assert!(rig.fake.zendesk_triggers().is_empty());

    rig.fake.fail_admin("POST", "/api/v2/triggers", 0);
    let again = setup(&config, &["zendesk", "--public-url", PUBLIC_URL]).await;
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("unchanged: webhook"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("created: trigger"),
        "{}",
        again.stdout
    );
    assert_eq!(rig.fake.zendesk_webhooks().len(), 1);
    assert_eq!(rig.fake.zendesk_triggers().len(), 1);
}

#[tokio::test]
async fn setup_zendesk_with_a_wrong_api_token_creates_nothing_and_says_why() {
    let rig = Rig::new().await;
    let config = rig.config(|raw| {
        rig.fake.serve_zendesk_for(raw, &rig.cfg, "");
        raw.zendesk.api_token = SecretString::from("wrong-token");
    });
    let run = setup(&config, &["zendesk", "--public-url", PUBLIC_URL]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
    assert!(
        run.stderr.contains("nothing was created or changed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("wrong-token"), "{}", run.stderr);
    assert_eq!(rig.fake.admin_writes(), 0);
}

fn integration(rig: &Rig) -> Value {
    let all = rig.fake.gorgias_integrations();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

#[tokio::test]
async fn setup_gorgias_creates_the_http_integration_and_a_second_run_changes_nothing() {
    let rig = Rig::new().await;
    let config = rig.gorgias(GORGIAS_TOKEN);
    let first = setup(&config, &["gorgias", "--public-url", PUBLIC_URL]).await;
    assert_eq!(first.code, Some(0), "{}\n{}", first.stdout, first.stderr);
    let i = integration(&rig);
    assert_eq!(i["name"], "ltv-tagger");
    assert_eq!(i["type"], "http");
    assert_eq!(
        i["http"]["url"],
        "https://tagger.example.com/webhooks/gorgias"
    );
    assert_eq!(i["http"]["method"], "POST");
    assert_eq!(i["http"]["request_content_type"], "application/json");
    assert_eq!(
        i["http"]["headers"],
        json!({ "X-Webhook-Token": GORGIAS_TOKEN })
    );
    assert_eq!(
        i["http"]["form"],
        json!({ "ticket_id": "{{ticket.id}}", "customer_email": "{{ticket.customer.email}}" })
    );
    assert_eq!(i["http"]["triggers"]["ticket-created"], true);
    assert_eq!(i["http"]["triggers"]["ticket-updated"], false);
    assert!(!first.stdout.contains(GORGIAS_TOKEN) && !first.stderr.contains(GORGIAS_TOKEN));
    assert!(first.stdout.contains(&format!("created: HTTP integration \"ltv-tagger\" → https://tagger.example.com/webhooks/gorgias (ticket created) (id {}) — Settings → Apps → HTTP integration", i["id"])), "{}", first.stdout);

    let second = setup(&config, &["gorgias", "--public-url", PUBLIC_URL]).await;
    assert_eq!(second.code, Some(0), "{}\n{}", second.stdout, second.stderr);
    assert_eq!(rig.fake.admin_writes(), 1);
    assert!(
        second.stdout.contains("unchanged: HTTP integration"),
        "{}",
        second.stdout
    );

    // A rotated token is written into the integration's header.
    let rotated = rig.gorgias("a-rotated-token");
    let third = setup(&rotated, &["gorgias", "--public-url", PUBLIC_URL]).await;
    assert_eq!(third.code, Some(0), "{}\n{}", third.stdout, third.stderr);
    assert!(
        third.stdout.contains("updated: HTTP integration"),
        "{}",
        third.stdout
    );
    assert_eq!(
        integration(&rig)["http"]["headers"]["X-Webhook-Token"],
        "a-rotated-token"
    );
    rig.fake.assert_no_violations();
}

#[tokio::test]
async fn setup_gorgias_without_a_token_generates_one_into_the_secret_file() {
    let rig = Rig::new().await;
    let config = rig.gorgias("");
    let refused = setup(&config, &["gorgias", "--public-url", PUBLIC_URL]).await;
    assert_eq!(
        refused.code,
        Some(1),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stderr.contains("give --secret-out FILE"),
        "{}",
        refused.stderr
    );
    assert!(rig.fake.gorgias_integrations().is_empty());

    let file = rig.path("gorgias_webhook_token");
    let file_arg = file.display().to_string();
    let run = setup(
        &config,
        &[
            "gorgias",
            "--public-url",
            PUBLIC_URL,
            "--secret-out",
            &file_arg,
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let token = std::fs::read_to_string(&file).expect("token file");
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(mode(&file), 0o600);
    assert!(!run.stdout.contains(&token));
    assert_eq!(
        integration(&rig)["http"]["headers"]["X-Webhook-Token"],
        token.as_str()
    );
}

#[tokio::test]
async fn setup_gorgias_dry_run_prints_the_body_with_the_token_redacted() {
    let rig = Rig::new().await;
    let run = setup(
        &rig.gorgias(GORGIAS_TOKEN),
        &["gorgias", "--public-url", PUBLIC_URL, "--dry-run"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("POST /api/integrations"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\"X-Webhook-Token\": \"[REDACTED]\""),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(GORGIAS_TOKEN), "{}", run.stdout);
    assert_eq!(rig.fake.admin_writes(), 0);
}

#[tokio::test]
async fn setup_refuses_a_missing_helpdesk_or_a_bad_public_url_with_exit_code_2() {
    let rig = Rig::new().await;
    let no_zendesk = setup(
        &rig.gorgias(GORGIAS_TOKEN),
        &["zendesk", "--public-url", PUBLIC_URL],
    )
    .await;
    assert_eq!(no_zendesk.code, Some(2), "{}", no_zendesk.stderr);
    assert!(
        no_zendesk.stderr.starts_with("zendesk.subdomain:"),
        "{}",
        no_zendesk.stderr
    );
    let bad_url = setup(
        &rig.zendesk(),
        &["zendesk", "--public-url", "tagger.example.com"],
    )
    .await;
    assert_eq!(bad_url.code, Some(2), "{}", bad_url.stderr);
    assert!(
        bad_url.stderr.starts_with("--public-url:"),
        "{}",
        bad_url.stderr
    );
    assert!(rig.fake.requests().is_empty());
}
