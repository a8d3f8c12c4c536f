//! The shared rate budget: one token bucket per helpdesk account, kept in the state DB so every
//! worker of every replica draws from it. Vendor pacing (Zendesk per minute, Gorgias leaky
//! bucket), acquire, pause on 429, cap from the helpdesk's remaining-calls headers, and the SQL.

mod pause;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rand::Rng;
use sqlx::Row;

use crate::clock::Millis;
use crate::state::StateStore;

/// The largest opening burst towards Zendesk: what a strict token bucket with a burst of 20
/// allows, so a start (or the end of a pause) with a full queue gets no 429.
pub const ZENDESK_MAX_BURST: f64 = 20.0;

/// Longest a worker is parked on one wait, so a misconfigured rate never parks it for hours.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenGrant {
    Granted,
    /// Try again after this long.
    Wait(Duration),
}

/// A token bucket kept in the state DB, so every worker of every replica shares one budget per
/// helpdesk account.
#[derive(Clone)]
pub struct RateBudget {
    store: StateStore,
    account: String,
    capacity: f64,
    per_ms: f64,
    /// One waiter per process polls the shared bucket; the others queue here in order, so a
    /// refill wakes one query per replica rather than one per worker.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// The bucket's level after refilling: `min(capacity, tokens + elapsed × per_ms)`, with the
/// elapsed time clamped at 0 against clock skew. `$1` now, `$2` per_ms, `$3` capacity.
const REFILLED: &str =
    "(case when tokens + (case when $1 > refilled_at then $1 - refilled_at else 0 end) * $2 > $3
      then $3
      else tokens + (case when $1 > refilled_at then $1 - refilled_at else 0 end) * $2 end)";

/// Takes one token atomically in one statement, when the bucket has one and no pause holds.
static TAKE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update rate_budget
         set tokens = (case when $1 >= paused_until and {t} >= 1 then {t} - 1 else {t} end),
             granted = (case when $1 >= paused_until and {t} >= 1 then 1 else 0 end),
             refilled_at = (case when $1 > refilled_at then $1 else refilled_at end),
             updated_at = $1
         where account = $4
         returning tokens, granted, paused_until",
        t = REFILLED
    )
});

impl RateBudget {
    pub fn new(store: StateStore, account: String, capacity: f64, per_ms: f64) -> RateBudget {
        RateBudget {
            store,
            account,
            capacity: capacity.max(1.0),
            per_ms,
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Zendesk counts requests per minute. Pacing at the full rate after a full-size burst could
    /// put `2 × limit` calls in one minute, so the burst is a twentieth of the limit (at most
    /// [`ZENDESK_MAX_BURST`], so the opening burst also fits a strict bucket) and the rate the
    /// rest: no 60-second window ever holds more than `requests_per_minute` calls.
    pub fn zendesk(store: StateStore, account: String, requests_per_minute: u32) -> RateBudget {
        let limit = f64::from(requests_per_minute);
        let burst = (limit / 20.0).floor().clamp(1.0, ZENDESK_MAX_BURST);
        let per_ms = ((limit - burst).max(1.0)) / 60_000.0;
        RateBudget::new(store, account, burst, per_ms)
    }

    /// Gorgias is a leaky bucket of `requests` that drains in `window`; we keep 5 % headroom on the
    /// drain rate for clock differences.
    pub fn gorgias(
        store: StateStore,
        account: String,
        requests: u32,
        window: Duration,
    ) -> RateBudget {
        let per_ms = f64::from(requests) * 0.95 / (window.as_millis().max(1) as f64);
        RateBudget::new(store, account, f64::from(requests), per_ms)
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Waits for a token from the shared bucket.
    pub async fn acquire(&self) -> Result<(), sqlx::Error> {
        let _turn = self.turn.lock().await;
        loop {
            match self.take(Millis::now()).await? {
                TokenGrant::Granted => return Ok(()),
                TokenGrant::Wait(d) => {
                    // A little jitter so waiting workers do not all wake in the same millisecond.
                    let jitter = rand::thread_rng().gen_range(0..=d.as_millis().min(50) as u64);
                    tokio::time::sleep(d + Duration::from_millis(jitter)).await;
                }
            }
        }
    }

    /// Creates the account's bucket (full) if it does not exist yet.
    pub async fn ensure(&self, now: Millis) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into rate_budget (account, tokens, refilled_at, paused_until, granted, updated_at)
             values ($1, $2, $3, 0, 0, $3)
             on conflict (account) do nothing",
        )
        .bind(&self.account)
        .bind(self.capacity)
        .bind(now)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// One attempt at a token.
    pub async fn take(&self, now: Millis) -> Result<TokenGrant, sqlx::Error> {
        let row = sqlx::query(&TAKE)
            .bind(now)
            .bind(self.per_ms)
            .bind(self.capacity)
            .bind(&self.account)
            .fetch_optional(self.store.pool())
            .await?;
        let Some(row) = row else {
            self.ensure(now).await?;
            return Ok(TokenGrant::Wait(Duration::ZERO));
        };
        let granted: i64 = row.try_get("granted")?;
        if granted == 1 {
            return Ok(TokenGrant::Granted);
        }
        let tokens: f64 = row.try_get("tokens")?;
        let paused_until: Millis = row.try_get("paused_until")?;
        let refill = if self.per_ms > 0.0 {
            Duration::from_millis(((1.0 - tokens).max(0.0) / self.per_ms).ceil() as u64)
        } else {
            Duration::from_secs(1)
        };
        let wait = paused_until
            .since(now)
            .max(refill)
            .clamp(Duration::from_millis(1), MAX_WAIT);
        Ok(TokenGrant::Wait(wait))
    }

    /// The helpdesk said 429 (or asked to wait): nobody calls this account before `now + d`.
    pub async fn pause(&self, d: Duration) {
        let now = Millis::now();
        if let Err(e) = self.pause_until(now + d, now).await {
            tracing::warn!(account = %self.account, error = %e, "cannot record rate-limit pause");
        }
    }

    pub async fn pause_until(&self, until: Millis, now: Millis) -> Result<(), sqlx::Error> {
        sqlx::query(
            "update rate_budget
             set paused_until = (case when paused_until > $2 then paused_until else $2 end),
                 tokens = 0, refilled_at = $3, updated_at = $3
             where account = $1",
        )
        .bind(&self.account)
        .bind(until)
        .bind(now)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// The helpdesk told us how many calls it still allows: never believe we have more.
    pub async fn cap(&self, remaining: f64) {
        if !remaining.is_finite() {
            return;
        }
        let remaining = remaining.clamp(0.0, self.capacity);
        let r = sqlx::query(
            "update rate_budget set tokens = $2, updated_at = $3
             where account = $1 and tokens > $2",
        )
        .bind(&self.account)
        .bind(remaining)
        .bind(Millis::now())
        .execute(self.store.pool())
        .await;
        if let Err(e) = r {
            tracing::warn!(account = %self.account, error = %e, "cannot sync rate budget");
        }
    }
}
