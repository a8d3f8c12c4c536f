//! The start-up check of `orders.query`: the statement is described by the order DB (column
//! names and declared types, no row needed), so a missing or non-numeric `ltv` is caught even
//! when no customer matches.

use sqlx::{Column, Database, Executor, Statement, TypeInfo};

use super::connect::{acquire, Pool};
use super::{Backend, OrderDb, OrdersError};

/// The columns the service reads, `ltv` first (required).
const COLUMNS: [&str; 3] = ["ltv", "orders", "disputes"];

impl OrderDb {
    /// Describes the query: `ltv` must be there, and `ltv`, `orders` and `disputes` (when
    /// present) must have a type the service reads as a number. What a description cannot tell
    /// (SQLite types values, not expressions) is left to the row decoder.
    pub async fn check_columns(&self) -> Result<(), OrdersError> {
        let backend = self.pool.backend();
        self.timed(async {
            let columns = match &self.pool {
                Pool::Postgres(p) => described(p, backend, &self.sql).await?,
                Pool::MySql(p) => described(p, backend, &self.sql).await?,
                Pool::Sqlite(p) => described(p, backend, &self.sql).await?,
            };
            check(backend, &columns)
        })
        .await
    }
}

/// (name, declared type) of each result column, from the prepared statement (no row needed).
pub(super) async fn described<DB: Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
    sql: &str,
) -> Result<Vec<(String, String)>, OrdersError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut conn = acquire(pool, backend).await?;
    let statement = conn
        .prepare(sql)
        .await
        .map_err(|e| OrdersError::from_statement(backend, e))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
        .collect())
}

fn check(backend: Backend, columns: &[(String, String)]) -> Result<(), OrdersError> {
    let find = |name: &str| columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(name));
    if find("ltv").is_none() {
        return Err(OrdersError::MissingColumn {
            backend,
            column: "ltv",
        });
    }
    for column in COLUMNS {
        if let Some((_, found)) = find(column) {
            if !reads_as_number(backend, found) {
                return Err(OrdersError::ColumnType {
                    backend,
                    column,
                    found: found.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The declared types the row decoder (`decode.rs`) reads as numbers, per driver.
fn reads_as_number(backend: Backend, type_name: &str) -> bool {
    let t = type_name.to_ascii_uppercase();
    match backend {
        Backend::Postgres => matches!(
            t.as_str(),
            "NUMERIC" | "INT2" | "INT4" | "INT8" | "FLOAT4" | "FLOAT8"
        ),
        Backend::MySql => {
            let base = t.strip_suffix(" UNSIGNED").unwrap_or(&t);
            matches!(
                base,
                "DECIMAL"
                    | "TINYINT"
                    | "SMALLINT"
                    | "MEDIUMINT"
                    | "INT"
                    | "BIGINT"
                    | "FLOAT"
                    | "DOUBLE"
                    | "NULL"
            )
        }
        // SQLite reports a column's declared type (none for expressions) and stores text that
        // reads as a decimal in TEXT columns: only BLOB is certainly wrong.
        Backend::Sqlite => t != "BLOB",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_are_refused_where_the_driver_types_them() {
        let cols = |t: &str| vec![("LTV".to_string(), t.to_string())];
        assert!(check(Backend::Postgres, &cols("NUMERIC")).is_ok());
        assert!(check(Backend::Postgres, &cols("TEXT")).is_err());
        assert!(check(Backend::MySql, &cols("BIGINT UNSIGNED")).is_ok());
        assert!(check(Backend::MySql, &cols("VARCHAR")).is_err());
        assert!(check(Backend::Sqlite, &cols("TEXT")).is_ok());
        assert!(check(Backend::Sqlite, &cols("BLOB")).is_err());
        let no_ltv = vec![("total".to_string(), "NUMERIC".to_string())];
        assert!(matches!(
            check(Backend::Postgres, &no_ltv),
            Err(OrdersError::MissingColumn { column: "ltv", .. })
        ));
    }
}
