//! Pacing towards Zendesk starts smooth: with a full queue, the opening burst fits a strict token
//! bucket at the configured rate with a burst of 20, and the budget is still used.

use std::time::Duration;

use fake_helpdesk::FakeHelpdeskConfig;
use ltv_tagger::clock::Millis;
use ltv_tagger::rate_budget::RateBudget;

use crate::helpers::{spawn_app, trigger_body, AppOptions};

const PER_MINUTE: u32 = 600;
const BURST: u32 = 20;
const TICKETS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_under_a_strict_bucket_of_burst_20_gets_almost_no_429() {
    let app = spawn_app(AppOptions {
        gorgias: false,
        fake: FakeHelpdeskConfig {
            zendesk_strict_bucket: Some((PER_MINUTE, BURST)),
            ..FakeHelpdeskConfig::default()
        },
        tweak: Box::new(|raw| raw.zendesk.requests_per_minute = PER_MINUTE),
        ..AppOptions::default()
    })
    .await;
    // Hold the account while the queue fills, as after a pause: then every worker competes for
    // a full bucket at once.
    let settings = app.raw.validate().expect("valid");
    let base = &settings.zendesk.as_ref().expect("zendesk").base_url;
    let budget = RateBudget::zendesk(app.store.clone(), format!("zendesk:{base}"), PER_MINUTE);
    let now = Millis::now();
    budget.ensure(now).await.expect("budget row");
    budget
        .pause_until(now + Duration::from_secs(6), now)
        .await
        .expect("pause");
    for t in 0..TICKETS {
        let res = app
            .post_zendesk(&trigger_body(5000 + t, "gold@shop.test", ""), None)
            .await;
        assert_eq!(res.status().as_u16(), 202);
    }
    app.wait_idle(Duration::from_secs(90)).await;

    let writes: Vec<_> = app
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/tags"))
        .collect();
    let limited = writes.iter().filter(|r| r.status == 429).count();
    let ok = writes.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok as u64, TICKETS, "every ticket tagged once");
    assert!(
        limited * 100 <= writes.len(),
        "{limited} of {} calls got 429 (at most 1 % allowed)",
        writes.len()
    );
    // How much of the budget a real run uses depends on how busy the machine is (a debug build
    // on shared cores may not reach 10 jobs/s): the simulated-clock test below asserts it.
    app.stop().await;
}

/// A strict token bucket, as an edge limiter keeps it: `burst` tokens, refilled continuously.
struct StrictBucket {
    tokens: f64,
    per_ms: f64,
    burst: f64,
    last: i64,
}

impl StrictBucket {
    /// Whether a call at `at_ms` passes (else it would get 429).
    fn call(&mut self, at_ms: i64) -> bool {
        let elapsed = (at_ms - self.last).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.burst);
        self.last = at_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[tokio::test]
async fn the_zendesk_budget_never_bursts_past_a_strict_bucket_of_20_and_uses_95_percent_of_it() {
    let s = crate::worker_step::setup_on(crate::helpers::Db::Sqlite, None).await;
    let budget = RateBudget::zendesk(s.worker.store.clone(), "zendesk:strict".into(), PER_MINUTE);
    // Simulated time: the budget is asked with explicit clocks, as fast as a full queue would.
    let start = Millis::now();
    budget.ensure(start).await.expect("budget row");
    let mut edge = StrictBucket {
        tokens: f64::from(BURST),
        per_ms: f64::from(PER_MINUTE) / 60_000.0,
        burst: f64::from(BURST),
        last: start.as_epoch_ms(),
    };
    let (mut now, mut granted, mut refused) = (start, 0u32, 0u32);
    let end = start + Duration::from_secs(60);
    while now < end {
        match budget.take(now).await.expect("take") {
            ltv_tagger::rate_budget::TokenGrant::Granted => {
                granted += 1;
                if !edge.call(now.as_epoch_ms()) {
                    refused += 1;
                }
            }
            ltv_tagger::rate_budget::TokenGrant::Wait(d) => now = now + d,
        }
    }
    let allowed = f64::from(BURST) + f64::from(PER_MINUTE);
    assert!(
        refused * 100 <= granted,
        "{refused} of {granted} calls would get 429 (at most 1 %)"
    );
    let used = f64::from(granted - refused) / allowed;
    assert!(
        used >= 0.95,
        "only {:.1} % of the budget used",
        used * 100.0
    );
    for db in s.dbs {
        db.drop_db().await;
    }
}
