//! Tags per the vendors' rules: Gorgias tag names are case-sensitive (written exactly as
//! configured, compared exactly); Zendesk lower-cases tags itself.

use fake_helpdesk::Helpdesk;
use ltv_tagger::config::{Amount, RawTier};
use ltv_tagger::domain::Source;

use crate::helpers::{gorgias_body, spawn_app, trigger_body, AppOptions, GORGIAS_TOKEN};

fn mixed_case_tiers(raw: &mut ltv_tagger::config::RawSettings) {
    raw.policy.vip_tiers = vec![
        RawTier {
            tag: "VIP".into(),
            min_ltv: Amount::Text("500".into()),
        },
        RawTier {
            tag: "VIP-Gold".into(),
            min_ltv: Amount::Text("2500".into()),
        },
    ];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gorgias_gets_the_tag_exactly_as_configured_and_zendesk_lower_cased() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(mixed_case_tiers),
        ..AppOptions::default()
    })
    .await;
    let res = app
        .post_gorgias(&gorgias_body(31, "gold@shop.test"), Some(GORGIAS_TOKEN))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let res = app
        .post_zendesk(&trigger_body(31, "gold@shop.test", ""), None)
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let rows = app.wait_for_audit(Source::Gorgias, 31, 1).await;
    assert_eq!(rows[0].record.outcome, "tagged");
    let z = app.wait_for_audit(Source::Zendesk, 31, 1).await;
    assert_eq!(z[0].record.outcome, "tagged", "{:?}", z[0].record);
    assert_eq!(app.fake.tags(Helpdesk::Gorgias, "31"), ["VIP-Gold"]);
    assert_eq!(app.fake.tags(Helpdesk::Zendesk, "31"), ["vip-gold"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gorgias_tag_in_another_case_is_a_different_tag_but_the_same_case_is_already_there() {
    let app = spawn_app(AppOptions {
        tweak: Box::new(mixed_case_tiers),
        ..AppOptions::default()
    })
    .await;
    let body = |ticket: u64, tags: &str| {
        serde_json::json!({
            "ticket_id": ticket.to_string(),
            "customer_email": "gold@shop.test",
            "tags": tags,
        })
        .to_string()
    };
    // "vip-gold" is not "VIP-Gold" on Gorgias: the configured tag is still written.
    app.fake
        .set_ticket_tags(Helpdesk::Gorgias, "32", &["vip-gold"]);
    app.post_gorgias(&body(32, "vip-gold"), Some(GORGIAS_TOKEN))
        .await;
    // The same name in the same case is there already: nothing to write.
    app.fake
        .set_ticket_tags(Helpdesk::Gorgias, "33", &["VIP-Gold"]);
    app.post_gorgias(&body(33, "VIP-Gold"), Some(GORGIAS_TOKEN))
        .await;
    // On Zendesk any case of the tag is the tag.
    app.post_zendesk(&trigger_body(34, "gold@shop.test", "VIP-GOLD"), None)
        .await;
    let r32 = app.wait_for_audit(Source::Gorgias, 32, 1).await;
    let r33 = app.wait_for_audit(Source::Gorgias, 33, 1).await;
    let r34 = app.wait_for_audit(Source::Zendesk, 34, 1).await;
    assert_eq!(r32[0].record.outcome, "tagged");
    assert_eq!(
        app.fake.tags(Helpdesk::Gorgias, "32"),
        ["VIP-Gold", "vip-gold"]
    );
    assert_eq!(r33[0].record.outcome, "already_tagged");
    assert_eq!(app.fake.tag_writes(Helpdesk::Gorgias, "33"), 0);
    assert_eq!(r34[0].record.outcome, "already_tagged");
    app.stop().await;
}
