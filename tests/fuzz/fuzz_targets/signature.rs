//! The authentication checks: `webhooks::zendesk::verify` (HMAC over timestamp ‖ body, replay window)
//! and `webhooks::gorgias::verify` (shared token), with header bytes, keys and clock all fuzzed.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use libfuzzer_sys::fuzz_target;
use ltv_tagger::http::webhooks::zendesk::{self, SignatureKeys};
use ltv_tagger::http::webhooks::{gorgias, WebhookError};
use secrecy::SecretString;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Raw header bytes: nothing may panic, and only a correct signature may pass.
    Zendesk {
        keys: Keys,
        signature: Option<Vec<u8>>,
        timestamp: Option<Vec<u8>>,
        body: Vec<u8>,
        clock: Clock,
    },
    /// A delivery signed the way Zendesk signs it: accepted exactly when its timestamp is well
    /// formed and inside the window; then one bit of the body, timestamp or signature is flipped
    /// and the delivery must be refused.
    ZendeskSigned {
        keys: Keys,
        /// Sign with the test secret instead of the real one.
        by_test_secret: bool,
        timestamp: Timestamp,
        body: Vec<u8>,
        clock: Clock,
        flip_where: u8,
        flip_at: usize,
        flip_bit: u8,
    },
    Gorgias {
        expected: String,
        token: Token,
    },
}

#[derive(Arbitrary, Debug)]
struct Keys {
    secret: String,
    test_secret: Option<String>,
    tolerance_secs: u64,
}

#[derive(Arbitrary, Debug)]
enum Clock {
    /// Seconds (and nanoseconds) since the epoch, anywhere in chrono's range.
    Absolute(i64, u32),
    /// This many seconds from the delivery's own timestamp (when it parses).
    FromTimestamp(i32),
}

#[derive(Arbitrary, Debug)]
enum Timestamp {
    /// A real time written out in RFC 3339, with the given offset, precision and padding.
    Written {
        secs: i64,
        nanos: u32,
        offset_mins: i16,
        precision: u8,
        use_z: bool,
        pad: bool,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Token {
    Missing,
    Same,
    Other(Vec<u8>),
}

const CHRONO_SECS: i64 = 8_000_000_000_000; // inside chrono's ±262,000 years

fn keys(k: &Keys) -> SignatureKeys {
    SignatureKeys {
        secret: SecretString::from(k.secret.clone()),
        test_secret: k.test_secret.clone().map(SecretString::from),
        tolerance: Duration::from_secs(k.tolerance_secs),
    }
}

fn parsed(timestamp: &[u8]) -> Option<DateTime<Utc>> {
    let s = std::str::from_utf8(timestamp).ok()?;
    Some(
        DateTime::parse_from_rfc3339(s.trim())
            .ok()?
            .with_timezone(&Utc),
    )
}

fn now(clock: &Clock, timestamp: Option<&[u8]>) -> DateTime<Utc> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    match *clock {
        Clock::Absolute(secs, nanos) => {
            DateTime::from_timestamp(secs % CHRONO_SECS, nanos % 1_000_000_000).unwrap_or(epoch)
        }
        Clock::FromTimestamp(skew) => {
            let base = timestamp.and_then(parsed).unwrap_or(epoch);
            base.checked_add_signed(TimeDelta::seconds(skew.into()))
                .unwrap_or(base)
        }
    }
}

fn written(t: &Timestamp) -> String {
    match t {
        Timestamp::Raw(s) => s.clone(),
        &Timestamp::Written {
            secs,
            nanos,
            offset_mins,
            precision,
            use_z,
            pad,
        } => {
            let utc = DateTime::from_timestamp(secs % CHRONO_SECS, nanos % 1_000_000_000)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let offset = FixedOffset::east_opt(i32::from(offset_mins) * 60 % 86_400)
                .unwrap_or(FixedOffset::east_opt(0).unwrap());
            let precision = match precision % 5 {
                0 => SecondsFormat::Secs,
                1 => SecondsFormat::Millis,
                2 => SecondsFormat::Micros,
                3 => SecondsFormat::Nanos,
                _ => SecondsFormat::AutoSi,
            };
            let s = utc.with_timezone(&offset).to_rfc3339_opts(precision, use_z);
            if pad {
                format!(" {s}\t")
            } else {
                s
            }
        }
    }
}

/// What the documentation of `zendesk::verify` promises for a correctly signed delivery.
fn in_window(k: &Keys, timestamp: &str, now: DateTime<Utc>) -> bool {
    let Some(sent_at) = parsed(timestamp.as_bytes()) else {
        return false;
    };
    let tolerance =
        TimeDelta::from_std(Duration::from_secs(k.tolerance_secs)).unwrap_or(TimeDelta::MAX);
    (now - sent_at).abs() <= tolerance
}

fn refused(r: &Result<(), WebhookError>) -> bool {
    matches!(r, Err(WebhookError::Unauthorized(_)))
}

fuzz_target!(|input: Input| match input {
    Input::Zendesk {
        keys: k,
        signature,
        timestamp,
        body,
        clock,
    } => {
        let now = now(&clock, timestamp.as_deref());
        let r = zendesk::verify(
            &keys(&k),
            signature.as_deref(),
            timestamp.as_deref(),
            &body,
            now,
        );
        match r {
            Err(WebhookError::Unauthorized(_)) => {}
            Err(other) => panic!("verify failed with something other than a 401: {other:?}"),
            Ok(()) => {
                let ts = std::str::from_utf8(timestamp.as_deref().unwrap_or_default())
                    .expect("accepted a timestamp that is not UTF-8");
                let sig = signature.unwrap_or_default();
                let by = |secret: &str| zendesk::sign(secret, ts, &body).into_bytes() == sig;
                assert!(
                    by(&k.secret) || k.test_secret.as_deref().is_some_and(by),
                    "accepted a signature that neither secret produces"
                );
                assert!(
                    in_window(&k, ts, now),
                    "accepted a timestamp outside the window"
                );
            }
        }
    }
    Input::ZendeskSigned {
        keys: k,
        by_test_secret,
        timestamp,
        body,
        clock,
        flip_where,
        flip_at,
        flip_bit,
    } => {
        let ts = written(&timestamp);
        let secret = match (&k.test_secret, by_test_secret) {
            (Some(test), true) => test.as_str(),
            _ => k.secret.as_str(),
        };
        let sig = zendesk::sign(secret, &ts, &body);
        let now = now(&clock, Some(ts.as_bytes()));
        let r = zendesk::verify(
            &keys(&k),
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            &body,
            now,
        );
        if in_window(&k, &ts, now) {
            assert!(
                r.is_ok(),
                "refused a correctly signed delivery inside the window: {r:?}"
            );
        } else {
            assert!(
                refused(&r),
                "accepted a timestamp that is malformed or outside the window"
            );
            return;
        }
        let (mut body, mut ts, mut sig) = (body, ts.into_bytes(), sig.into_bytes());
        let target = match flip_where % 3 {
            0 => &mut body,
            1 => &mut ts,
            _ => &mut sig,
        };
        if target.is_empty() {
            target.push(b'x');
        } else {
            let i = flip_at % target.len();
            target[i] ^= 1 << (flip_bit % 8);
        }
        let r = zendesk::verify(&keys(&k), Some(&sig), Some(&ts), &body, now);
        assert!(refused(&r), "accepted a delivery altered after signing");
    }
    Input::Gorgias { expected, token } => {
        let token = match token {
            Token::Missing => None,
            Token::Same => Some(expected.clone().into_bytes()),
            Token::Other(t) => Some(t),
        };
        let r = gorgias::verify(&SecretString::from(expected.clone()), token.as_deref());
        let should_pass = token
            .as_deref()
            .is_some_and(|t| !t.is_empty() && t == expected.as_bytes());
        if should_pass {
            assert!(r.is_ok(), "refused the right token: {r:?}");
        } else {
            assert!(refused(&r), "accepted a wrong or missing token");
        }
    }
});
