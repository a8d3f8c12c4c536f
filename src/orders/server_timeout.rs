//! The order query is stopped on the MySQL/MariaDB server at `orders.query_timeout`, so a slow
//! query cannot keep running (and pin a connection) after the client gave up on it. MySQL calls
//! the limit `max_execution_time` (milliseconds, SELECT only), MariaDB `max_statement_time`
//! (seconds); which server it is, is read from `version()` when each connection opens.
//! (PostgreSQL gets `statement_timeout` in its connect options.)

use std::time::Duration;

use sqlx::{Executor, MySqlConnection};

/// Sets the session's statement time limit on a fresh connection.
pub(super) async fn limit_statement_time(
    conn: &mut MySqlConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let version: String = sqlx::query_scalar("select version()")
        .fetch_one(&mut *conn)
        .await?;
    conn.execute(limit_statement(&version, timeout).as_str())
        .await?;
    Ok(())
}

/// The statement for a server of this `version()` string.
fn limit_statement(version: &str, timeout: Duration) -> String {
    if version.to_ascii_lowercase().contains("mariadb") {
        format!(
            "set session max_statement_time = {:.3}",
            timeout.as_secs_f64().max(0.001)
        )
    } else {
        format!(
            "set session max_execution_time = {}",
            timeout.as_millis().clamp(1, u128::from(u32::MAX))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gets_seconds_and_mysql_milliseconds() {
        let t = Duration::from_millis(2500);
        assert_eq!(
            limit_statement("10.11.6-MariaDB-0+deb12u1", t),
            "set session max_statement_time = 2.500"
        );
        assert_eq!(
            limit_statement("8.0.36", t),
            "set session max_execution_time = 2500"
        );
    }
}
