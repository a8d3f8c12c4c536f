//! The index check: `EXPLAIN` the lookup on each driver, name every table it reads whole, say which `create index` fixes it.
//!
//! - PostgreSQL: `explain` in a read-only transaction with `set local enable_seqscan = off`, so a
//!   `Seq Scan` that remains means no index can serve the query (on a tiny table the planner would
//!   otherwise pick a sequential scan even with the index).
//! - MySQL/MariaDB: `explain`; an access `type` of `ALL` (or `index`, a whole-index read) is a scan.
//! - SQLite: `explain query plan`; a `SCAN` step is a scan (`SEARCH … USING INDEX` is not).
//!
//! The query is explained with the check address written in as a literal (MySQL's text protocol
//! takes no parameters). Aliases in the plan are mapped back to the tables the query names.

use std::fmt;

use sqlx::{Executor, Row};

use super::connect::{acquire, Pool};
use super::placeholders::email_offsets;
use super::presets::IndexAdvice;
use super::sql_names::SqlNames;
use super::{Backend, OrderDb, OrdersError, CHECK_EMAIL};

/// A table the lookup reads whole, and the statement that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanWarning {
    pub table: String,
    pub fix: String,
}

impl fmt::Display for ScanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "orders.query reads the whole table {} on every lookup (no index serves it); fix: {}",
            self.table, self.fix
        )
    }
}

impl OrderDb {
    /// The tables `orders.query` scans whole, each with its fix (`advice` first: a preset's
    /// exact statements). Empty: every table is reached through an index.
    pub async fn whole_table_scans(
        &self,
        advice: &[IndexAdvice],
    ) -> Result<Vec<ScanWarning>, OrdersError> {
        let backend = self.pool.backend();
        let sql = inline_email(&self.source, backend);
        let names = SqlNames::of(&self.source, backend);
        let scanned = self.timed(scanned_names(&self.pool, &sql, &names)).await?;
        let mut warnings: Vec<ScanWarning> = Vec::new();
        for name in scanned {
            let table = names.table_of(&name);
            if warnings.iter().any(|w| w.table == table) {
                continue;
            }
            let fix = advice
                .iter()
                .find(|a| same_table(&a.table, &table))
                .map(|a| a.statement.clone())
                .unwrap_or_else(|| names.suggest(&table, backend));
            warnings.push(ScanWarning { table, fix });
        }
        Ok(warnings)
    }
}

/// The names (tables or aliases) the plan reads whole.
async fn scanned_names(
    pool: &Pool,
    sql: &str,
    names: &SqlNames,
) -> Result<Vec<String>, OrdersError> {
    match pool {
        Pool::Postgres(p) => {
            let backend = Backend::Postgres;
            let mut conn = acquire(p, backend).await?;
            let err = |e| OrdersError::from_statement(backend, e);
            conn.execute("begin read only").await.map_err(err)?;
            let planned = async {
                conn.execute("set local enable_seqscan = off").await?;
                sqlx::query(&format!("explain {sql}"))
                    .fetch_all(&mut *conn)
                    .await
            }
            .await;
            conn.execute("rollback").await.map_err(err)?;
            let mut names = Vec::new();
            for row in planned.map_err(err)? {
                let line: String = row.try_get(0).map_err(err)?;
                names.extend(pg_seq_scan(&line));
            }
            Ok(names)
        }
        Pool::MySql(p) => {
            let backend = Backend::MySql;
            let mut conn = acquire(p, backend).await?;
            let err = |e| OrdersError::from_statement(backend, e);
            let rows = conn
                .fetch_all(format!("explain {sql}").as_str())
                .await
                .map_err(err)?;
            let mut scanned = Vec::new();
            for row in rows {
                let access: Option<String> = row.try_get("type").map_err(err)?;
                let table: Option<String> = row.try_get("table").map_err(err)?;
                let possible: Option<String> = row.try_get("possible_keys").map_err(err)?;
                let Some(alias) = table.filter(|t| !t.starts_with('<')) else {
                    continue;
                };
                let real = names.table_of(&alias);
                // A table the query looks the email up in needs an index on that column, whatever
                // the optimizer picked on this (maybe tiny) table; any other table needs some
                // usable index rather than a whole read.
                let missing = match names.email_column(&real) {
                    // MariaDB has no index on `lower(column)`; MySQL's functional indexes are
                    // not worth the trouble when the collation ignores case already.
                    Some((_, true)) => true,
                    Some((column, false)) => !mysql_has_index(&mut conn, &real, &column)
                        .await
                        .map_err(err)?,
                    None => {
                        let whole = access.as_deref().is_some_and(|a| {
                            a.eq_ignore_ascii_case("ALL") || a.eq_ignore_ascii_case("index")
                        });
                        whole && possible.as_deref().map_or(true, str::is_empty)
                    }
                };
                if missing {
                    scanned.push(alias);
                }
            }
            Ok(scanned)
        }
        Pool::Sqlite(p) => {
            let backend = Backend::Sqlite;
            let mut conn = acquire(p, backend).await?;
            let err = |e| OrdersError::from_statement(backend, e);
            let rows = sqlx::query(&format!("explain query plan {sql}"))
                .fetch_all(&mut *conn)
                .await
                .map_err(err)?;
            let mut names = Vec::new();
            for row in rows {
                let detail: String = row.try_get("detail").map_err(err)?;
                names.extend(sqlite_scan(&detail));
            }
            Ok(names)
        }
    }
}

/// Whether an index of `table` (`schema.table` allowed) holds `column`.
async fn mysql_has_index(
    conn: &mut sqlx::MySqlConnection,
    table: &str,
    column: &str,
) -> Result<bool, sqlx::Error> {
    let bare = |s: &str| s.trim_matches('`').to_owned();
    let (schema, name) = match table.rsplit_once('.') {
        Some((schema, name)) => (Some(bare(schema)), bare(name)),
        None => (None, bare(table)),
    };
    let count: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.statistics \
         where table_schema = coalesce(?, database()) and table_name = ? and column_name = ?",
    )
    .bind(schema)
    .bind(name)
    .bind(column)
    .fetch_one(conn)
    .await?;
    Ok(count > 0)
}

/// `->  Seq Scan on orders o  (cost=…)` → `o` (the alias if there is one, else the table).
fn pg_seq_scan(line: &str) -> Option<String> {
    let at = line.find("Seq Scan on ")?;
    let rest = &line[at + "Seq Scan on ".len()..];
    let rest = rest.split("  (").next().unwrap_or(rest);
    let mut words = rest.split_whitespace();
    let table = words.next()?;
    Some(words.next().unwrap_or(table).to_owned())
}

/// `SCAN orders`, `SCAN o`, `SCAN TABLE orders AS o`, `SCAN o USING COVERING INDEX i` → the name.
fn sqlite_scan(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("SCAN ")?;
    let rest = rest.strip_prefix("TABLE ").unwrap_or(rest);
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    if first == "CONSTANT" || first == "SUBQUERY" || first.starts_with('(') {
        return None;
    }
    Some(match (words.next(), words.next()) {
        (Some("AS"), Some(alias)) => alias.to_owned(),
        _ => first.to_owned(),
    })
}

/// `orders.query` with every `:email` replaced by the check address as a string literal.
pub(super) fn inline_email(query: &str, backend: Backend) -> String {
    let literal = format!("'{CHECK_EMAIL}'");
    let mut out = String::with_capacity(query.len() + 32);
    let mut copied = 0;
    for at in email_offsets(query.as_bytes(), backend) {
        out.push_str(&query[copied..at]);
        out.push_str(&literal);
        copied = at + ":email".len();
    }
    out.push_str(&query[copied..]);
    out
}

/// Two spellings of one table: `shopify."order"` and `order`, `wp_posts` and `WP_POSTS`.
fn same_table(a: &str, b: &str) -> bool {
    let last = |s: &str| {
        s.rsplit('.')
            .next()
            .unwrap_or(s)
            .trim_matches(|c| c == '"' || c == '`')
            .to_ascii_lowercase()
    };
    last(a) == last(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_lines_name_the_scanned_table_or_alias() {
        assert_eq!(
            pg_seq_scan("  ->  Seq Scan on orders  (cost=10000000000.00..1 rows=1 width=32)"),
            Some("orders".into())
        );
        assert_eq!(
            pg_seq_scan("Seq Scan on chargebacks c  (cost=0.00..1.01 rows=1 width=0)"),
            Some("c".into())
        );
        assert_eq!(pg_seq_scan("Index Scan using i on orders"), None);
        assert_eq!(sqlite_scan("SCAN orders"), Some("orders".into()));
        assert_eq!(sqlite_scan("SCAN TABLE orders AS o"), Some("o".into()));
        assert_eq!(sqlite_scan("SEARCH orders USING INDEX i (<expr>=?)"), None);
        assert_eq!(sqlite_scan("SCAN CONSTANT ROW"), None);
    }
}
