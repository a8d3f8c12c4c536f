//! How long an account's pause (429 or a capped `Retry-After`) still holds, so callers can
//! give their job back to the queue instead of holding it as `running` through a long pause.

use std::time::Duration;

use super::RateBudget;
use crate::clock::Millis;

impl RateBudget {
    /// The time left on the account's pause at `now`, if one holds.
    pub async fn paused_for(&self, now: Millis) -> Result<Option<Duration>, sqlx::Error> {
        let until: Option<Millis> =
            sqlx::query_scalar("select paused_until from rate_budget where account = $1")
                .bind(&self.account)
                .fetch_optional(self.store.pool())
                .await?;
        Ok(until.map(|u| u.since(now)).filter(|left| !left.is_zero()))
    }
}
