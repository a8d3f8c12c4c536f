//! The state database's own clock, in epoch milliseconds, as SQL: leases are set and judged by it,
//! so a replica whose clock runs ahead (or behind) neither takes over the others' jobs early nor
//! keeps an expired one.

use super::Backend;

/// An SQL expression for "now" on the state DB, in epoch milliseconds (bigint).
pub(super) fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "(extract(epoch from clock_timestamp()) * 1000)::bigint",
        // julianday('now') has millisecond precision; 2440587.5 is the Unix epoch.
        Backend::Sqlite => "cast((julianday('now') - 2440587.5) * 86400000 as integer)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_now_is_the_wall_clock_in_milliseconds() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("pool");
        let db: i64 = sqlx::query_scalar(&format!("select {}", now_ms(Backend::Sqlite)))
            .fetch_one(&pool)
            .await
            .expect("now");
        let local = chrono::Utc::now().timestamp_millis();
        assert!((db - local).abs() < 5_000, "db {db} local {local}");
    }
}
