//! `audit` and `explain` as an operator runs them: past decisions without SQL, and why a customer
//! gets their tags, with no helpdesk secret in the config.

use ltv_tagger::domain::Source;
use serde_json::Value;

use crate::helpers::{cli, spawn_app, trigger_body, AppOptions};

#[tokio::test]
async fn audit_lists_past_decisions_filtered_by_ticket_email_and_limit_as_text_and_json() {
    let app = spawn_app(AppOptions::default()).await;
    for (ticket, email) in [
        (1, "gold@shop.test"),
        (2, "small@shop.test"),
        (3, "gold@shop.test"),
    ] {
        let res = app
            .post_zendesk(&trigger_body(ticket, email, ""), None)
            .await;
        assert_eq!(res.status().as_u16(), 202);
    }
    for ticket in [1, 2, 3] {
        app.wait_for_audit(Source::Zendesk, ticket, 1).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Secrets stay redacted: `audit` needs none.
    let config = dir.path().join("c.toml");
    std::fs::write(&config, app.raw.to_redacted_toml()).expect("config");

    let (code, out, err) = cli(&["audit", "--format", "json", "--ticket", "1"], &config).await;
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r["source"].as_str(), r["ticket"].as_str()),
        (Some("zendesk"), Some("1"))
    );
    assert_eq!(r["email"], "gold@shop.test");
    assert_eq!(r["tags_decided"], serde_json::json!(["vip-gold"]));
    assert_eq!(r["tags_written"], serde_json::json!(["vip-gold"]));
    assert_eq!(r["outcome"], "tagged");
    assert_eq!(r["attempts"], 1);
    assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (_, out, _) = cli(
        &["audit", "--format", "json", "--email", " GOLD@shop.test"],
        &config,
    )
    .await;
    let tickets: Vec<String> = serde_json::from_str::<Vec<Value>>(&out)
        .expect("json")
        .iter()
        .map(|r| r["ticket"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(tickets, ["1", "3"]);
    let (_, out, _) = cli(
        &["audit", "--format", "json", "--limit", "1", "--since", "1h"],
        &config,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out).expect("json")[0]["ticket"],
        "3"
    );

    let (code, out, _) = cli(&["audit"], &config).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .next()
            .is_some_and(|h| h.contains("outcome") && h.contains("tags written")),
        "{out}"
    );
    assert!(
        out.contains("no_tags") && out.contains("small@shop.test"),
        "{out}"
    );

    let (code, _, err) = cli(&["audit", "--ticket", "abc"], &config).await;
    assert_eq!(code, 1);
    assert!(err.contains("--ticket"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn explain_gives_the_reasons_for_several_customers_without_helpdesk_secrets() {
    let app = spawn_app(AppOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    // Only the order DB and the policy: no helpdesk section at all.
    std::fs::write(
        &config,
        format!(
            "[orders]\nurl = {:?}\nquery = {:?}\n",
            app.raw.orders.url, app.raw.orders.query
        ),
    )
    .expect("config");
    let (code, out, err) = cli(
        &[
            "explain",
            "--format",
            "json",
            "gold@shop.test",
            "disputer@shop.test",
            "nobody@shop.test",
        ],
        &config,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let e: Vec<Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(e.len(), 3);
    assert_eq!(e[0]["tags"], serde_json::json!(["vip-gold"]));
    assert!(
        e[0]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.ends_with("≥ 2500 → vip-gold")),
        "{}",
        e[0]
    );
    assert_eq!(e[1]["tags"], serde_json::json!(["dispute"]));
    let reasons = e[1]["reasons"].to_string();
    assert!(
        reasons.contains("dispute override") && reasons.contains("vip-gold removed"),
        "{reasons}"
    );
    assert_eq!(e[2]["known"], false);
    assert_eq!(e[2]["ltv"], "0");
    assert!(e[2]["reasons"][0]
        .as_str()
        .is_some_and(|r| r.contains("counts as LTV 0")));

    let (code, out, _) = cli(&["explain", "gold@shop.test"], &config).await;
    assert_eq!(code, 0);
    assert!(out.contains("because") && out.contains("vip-gold"), "{out}");
    let (code, _, err) = cli(&["explain", "not-an-email"], &config).await;
    assert_eq!(code, 1);
    assert!(err.contains("not an email address"), "{err}");
    app.stop().await;
}
