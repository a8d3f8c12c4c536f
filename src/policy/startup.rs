//! The start-up check of the conditions against the columns `orders.query` really returns.

use super::Policy;
use crate::orders::OrderDb;

/// Fails start-up when a rule reads a column the query does not return. The service must start
/// while the order DB is down, so an unreachable DB only logs a warning (a missing column then
/// shows in `explain` and in the audit rows as a rule that could not be decided).
pub async fn check_columns_at_start(policy: &Policy, orders: &OrderDb) -> anyhow::Result<()> {
    if policy.columns_read().is_empty() {
        return Ok(());
    }
    match orders.columns().await {
        Ok(columns) => {
            let unknown = policy.unknown_columns(&columns);
            if unknown.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("invalid configuration:\n  - {}", unknown.join("\n  - "))
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "order DB not reachable at start: the columns policy rules read are not checked");
            Ok(())
        }
    }
}
