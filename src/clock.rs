//! Time as the state DB stores it: Unix epoch milliseconds, with the arithmetic the queue needs.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time in Unix epoch milliseconds (the state DB's time columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, sqlx::Type)]
#[sqlx(transparent)]
pub struct Millis(i64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    pub fn now() -> Millis {
        Millis(chrono::Utc::now().timestamp_millis())
    }

    pub const fn from_epoch_ms(ms: i64) -> Millis {
        Millis(ms)
    }

    pub fn as_epoch_ms(self) -> i64 {
        self.0
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 in UTC, for people (`2026-12-01T09:41:48Z`).
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A duration in whole milliseconds, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(ms(d)))
    }
}

impl Sub<Duration> for Millis {
    type Output = Millis;
    fn sub(self, d: Duration) -> Millis {
        Millis(self.0.saturating_sub(ms(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_since_is_never_negative() {
        let t = Millis::from_epoch_ms(10_000);
        assert_eq!((t + Duration::from_secs(2)).as_epoch_ms(), 12_000);
        assert_eq!((t - Duration::from_secs(2)).as_epoch_ms(), 8_000);
        assert_eq!(
            t.since(Millis::from_epoch_ms(4_000)),
            Duration::from_secs(6)
        );
        assert_eq!(Millis::from_epoch_ms(4_000).since(t), Duration::ZERO);
        assert_eq!(
            (Millis::from_epoch_ms(i64::MAX) + Duration::from_secs(1)).as_epoch_ms(),
            i64::MAX
        );
        assert_eq!(
            Millis::from_epoch_ms(0).to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
    }
}
