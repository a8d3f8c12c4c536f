//! The worker's seam: one job run to its end by `Worker::run_once`, with no timer, against the
//! fake helpdesk or a helpdesk of the test's own plugged into the registry.

use std::sync::Arc;

use async_trait::async_trait;
use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig, Helpdesk as Vendor};
use ltv_tagger::clock::Millis;
use ltv_tagger::config::RawSettings;
use ltv_tagger::domain::{CustomerEmail, Outcome, Requester, RequesterId, Source, Tag, TicketId};
use ltv_tagger::helpdesk::{Helpdesk, HelpdeskError, Helpdesks};
use ltv_tagger::metrics::Metrics;
use ltv_tagger::orders::OrderDb;
use ltv_tagger::state::{Enqueued, NewEvent, StateStore};
use ltv_tagger::worker::Worker;

use crate::helpers::{shop_db, test_settings, Db, TestDb};

pub(crate) fn event(ticket: &str, requester: Requester) -> NewEvent {
    NewEvent {
        source: Source::Zendesk,
        ticket_id: TicketId::parse(ticket).expect("id"),
        event_type: "trigger".into(),
        requester: Some(requester),
        ticket_tags: vec![],
        ticket_updated_at: None,
        dedupe_key: format!("test:{ticket}"),
        body: "{}".into(),
    }
}

pub(crate) struct Setup {
    pub(crate) worker: Worker,
    pub(crate) fake: FakeHelpdesk,
    pub(crate) dbs: Vec<TestDb>,
}

async fn setup(plug: Option<Arc<dyn Helpdesk>>) -> Setup {
    setup_on(Db::Sqlite, plug).await
}

/// A worker on a fresh state DB of `state`'s kind, the SQLite shop and the fake Zendesk.
pub(crate) async fn setup_on(state: Db, plug: Option<Arc<dyn Helpdesk>>) -> Setup {
    setup_with(state, FakeHelpdeskConfig::default(), |_| {}, plug).await
}

/// [`setup_on`] with the fake's own config and changes to the settings.
pub(crate) async fn setup_with(
    state: Db,
    cfg: FakeHelpdeskConfig,
    tweak: impl FnOnce(&mut RawSettings),
    plug: Option<Arc<dyn Helpdesk>>,
) -> Setup {
    let fake = FakeHelpdesk::start(cfg.clone()).await.expect("fake");
    let state_db = TestDb::create(state, "ltv_step").await;
    let shop = shop_db(Db::Sqlite).await;
    let mut raw = test_settings(&state_db.url, &shop.url, &fake, &cfg, true, false);
    tweak(&mut raw);
    let settings = raw.validate().expect("valid");
    let store = StateStore::connect_lazy(&settings.state).expect("store");
    store.migrate().await.expect("migrate");
    let metrics = Metrics::new().expect("metrics");
    let mut helpdesks = Helpdesks::from_settings(&settings, &store, &metrics).expect("clients");
    if let Some(plug) = plug {
        helpdesks = helpdesks.with(Source::Zendesk, plug);
    }
    let worker = Worker {
        store,
        orders: OrderDb::connect_lazy(&settings.orders_options()).expect("orders"),
        policy: settings.policy.clone().into(),
        helpdesks,
        metrics,
        settings: settings.worker.clone(),
        owner: "step-test".into(),
        wake: Default::default(),
    };
    Setup {
        worker,
        fake,
        dbs: vec![state_db, shop],
    }
}

#[tokio::test]
async fn run_once_takes_one_job_to_its_audit_row_and_then_finds_nothing_due() {
    let s = setup(None).await;
    let email = Requester::Email(CustomerEmail::parse("gold@shop.test").expect("email"));
    let queued = s
        .worker
        .store
        .enqueue(&event("41", email), Millis::now())
        .await
        .expect("enqueue");
    assert!(matches!(queued, Enqueued::Queued(_)), "{queued:?}");

    let ran = s.worker.run_once().await.expect("state DB");
    assert_eq!(ran, Some(Some(Outcome::Tagged)));
    assert_eq!(s.fake.tags(Vendor::Zendesk, "41"), ["vip-gold"]);
    let audit = s.worker.store.audit(None, 10).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].record.outcome, "tagged");
    let ltv: Option<rust_decimal::Decimal> = audit[0]
        .record
        .ltv
        .as_deref()
        .map(|l| l.parse().expect("decimal"));
    assert_eq!(ltv, Some(rust_decimal::Decimal::new(2500, 0)));

    assert_eq!(s.worker.run_once().await.expect("state DB"), None);
    for db in s.dbs {
        db.drop_db().await;
    }
}

/// A helpdesk that knows one requester and refuses every tag write as a closed ticket.
struct ClosedTickets;

#[async_trait]
impl Helpdesk for ClosedTickets {
    async fn requester_email(&self, id: &RequesterId) -> Result<Option<String>, HelpdeskError> {
        Ok((id.as_str() == "7").then(|| "Gold@Shop.Test".to_string()))
    }

    async fn add_tags(&self, _: TicketId, _: &[Tag]) -> Result<(), HelpdeskError> {
        Err(HelpdeskError::Rejected {
            status: 422,
            reason: "Status: closed prevents ticket update".into(),
        })
    }
}

#[tokio::test]
async fn a_helpdesk_plugged_into_the_registry_serves_the_requester_and_the_write() {
    let s = setup(Some(Arc::new(ClosedTickets))).await;
    let id = Requester::Id(RequesterId::parse("7").expect("id"));
    s.worker
        .store
        .enqueue(&event("42", id), Millis::now())
        .await
        .expect("enqueue");

    assert_eq!(
        s.worker.run_once().await.expect("state DB"),
        Some(Some(Outcome::Rejected))
    );
    let audit = s.worker.store.audit(None, 10).await.expect("audit");
    assert_eq!(audit[0].record.email.as_deref(), Some("gold@shop.test"));
    assert_eq!(audit[0].record.tags_decided, ["vip-gold"]);
    assert!(audit[0].record.tags_written.is_empty());
    assert!(
        s.fake.requests().is_empty(),
        "the plugged helpdesk replaced the configured one"
    );
    for db in s.dbs {
        db.drop_db().await;
    }
}
