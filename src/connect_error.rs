//! Connection errors in words an operator can act on (refused, DNS, TLS, timeout, auth), for the
//! helpdesk clients and the database pools, instead of "error sending request" or "pool timed out".

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection, Database};

/// What went wrong, found by walking the error's causes.
fn kind_of(e: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    let mut text = String::new();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some("connection refused"),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                    return Some("connection reset")
                }
                io::ErrorKind::TimedOut => return Some("timed out"),
                _ => {}
            }
        }
        text.push_str(&err.to_string().to_ascii_lowercase());
        text.push(' ');
        cur = err.source();
    }
    if text.contains("dns error") || text.contains("failed to lookup address") {
        Some("DNS lookup failed")
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        Some("TLS failed")
    } else if text.contains("password") || text.contains("access denied") || text.contains("auth") {
        Some("authentication failed")
    } else {
        None
    }
}

/// `"{what happened}: {every cause}"` for a helpdesk call that got no answer. reqwest errors name
/// the URL but never the headers; the URL is left out too (the caller names the path).
pub fn describe_http(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        Some("timed out")
    } else {
        kind_of(e)
    };
    let mut chain = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = cur {
        chain.push(err.to_string());
        cur = err.source();
    }
    chain.dedup();
    let causes = if chain.is_empty() {
        e.to_string()
    } else {
        chain.join(": ")
    };
    match kind {
        Some(k) => format!("{k}: {causes}"),
        None => causes,
    }
}

/// `"{what happened}: {error}"` for a database error, when its causes say.
pub fn describe_db(e: &sqlx::Error) -> String {
    match kind_of(e) {
        Some(k) => format!("{k}: {e}"),
        None => e.to_string(),
    }
}

/// A pool that timed out hides why its connections failed: one direct connection, bounded by
/// `within`, tells (refused, DNS, TLS, auth). When that succeeds the pool was simply busy.
pub async fn diagnose_pool_timeout<DB: Database>(
    pool: &sqlx::Pool<DB>,
    within: Duration,
) -> sqlx::Error {
    let options = pool.connect_options();
    let busy = || {
        sqlx::Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no free connection: all {} connections of the pool are busy (the database accepts new ones)",
                pool.size()
            ),
        ))
    };
    match tokio::time::timeout(within, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            busy()
        }
        Ok(Err(e)) => e,
        Err(_) => sqlx::Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting timed out after {within:?} (no answer from the host: firewall or wrong port?)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_and_texts_name_what_happened() {
        let refused = sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(describe_db(&refused).starts_with("connection refused: "));
        let dns = sqlx::Error::Io(io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert!(describe_db(&dns).starts_with("DNS lookup failed: "));
        let other = sqlx::Error::RowNotFound;
        assert_eq!(describe_db(&other), other.to_string());
    }
}
