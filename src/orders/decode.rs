//! Reading a result row as [`CustomerStats`]: columns found by name, each driver's numeric types.

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, ColumnIndex, Decode, Row, Type, TypeInfo, ValueRef};

use super::{Backend, OrdersError};
use crate::domain::CustomerStats;

/// Reads a non-NULL value whose runtime type is `type_name` as a decimal:
/// None when the type is not a number, Some(Err(reason)) when the value is not usable.
pub(super) type NumberReader<R> = fn(&R, usize, &str) -> Option<Result<Decimal, String>>;

pub(super) fn stats_from_row<R: Row>(
    row: &R,
    backend: Backend,
    number: NumberReader<R>,
) -> Result<CustomerStats, OrdersError>
where
    usize: ColumnIndex<R>,
{
    let find = |name: &str| {
        row.columns()
            .iter()
            .position(|c| c.name().eq_ignore_ascii_case(name))
    };
    let read = |index: usize, column: &'static str| -> Result<Decimal, OrdersError> {
        let value_error = |reason| OrdersError::ColumnValue {
            backend,
            column,
            reason,
        };
        let raw = row
            .try_get_raw(index)
            .map_err(|e| value_error(e.to_string()))?;
        if raw.is_null() {
            return Ok(Decimal::ZERO);
        }
        let found = raw.type_info().name().to_owned();
        match number(row, index, &found) {
            Some(value) => value.map_err(value_error),
            None => Err(OrdersError::ColumnType {
                backend,
                column,
                found,
            }),
        }
    };
    let count = |column: &'static str| -> Result<i64, OrdersError> {
        let Some(index) = find(column) else {
            return Ok(0);
        };
        let n = read(index, column)?;
        match i64::try_from(n) {
            Ok(whole) if n.fract().is_zero() => Ok(whole),
            _ => Err(OrdersError::ColumnValue {
                backend,
                column,
                reason: format!("{n} is not a whole number"),
            }),
        }
    };
    let ltv = find("ltv").ok_or(OrdersError::MissingColumn {
        backend,
        column: "ltv",
    })?;
    Ok(CustomerStats {
        ltv: read(ltv, "ltv")?,
        orders: count("orders")?,
        disputes: count("disputes")?,
        extra: Default::default(),
    })
}

fn get<'r, R: Row, T>(row: &'r R, index: usize) -> Result<T, String>
where
    T: Decode<'r, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    row.try_get(index).map_err(|e| e.to_string())
}

/// A float becomes the decimal its shortest round-trip spelling names (19.99 → 19.99), no arithmetic.
fn float_to_decimal(shortest: String) -> Result<Decimal, String> {
    Decimal::from_str(&shortest).map_err(|e| format!("{shortest} is not a decimal amount: {e}"))
}

pub(super) fn pg_number(
    row: &PgRow,
    index: usize,
    type_name: &str,
) -> Option<Result<Decimal, String>> {
    Some(match type_name {
        "NUMERIC" => super::pg_numeric::numeric(row, index),
        "INT2" => get::<_, i16>(row, index).map(Decimal::from),
        "INT4" => get::<_, i32>(row, index).map(Decimal::from),
        "INT8" => get::<_, i64>(row, index).map(Decimal::from),
        "FLOAT4" => get::<_, f32>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        "FLOAT8" => get::<_, f64>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        _ => return None,
    })
}

/// MySQL/MariaDB: `count` is BIGINT, `sum` of anything exact is DECIMAL.
pub(super) fn mysql_number(
    row: &MySqlRow,
    index: usize,
    type_name: &str,
) -> Option<Result<Decimal, String>> {
    Some(match type_name {
        "DECIMAL" => get(row, index),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            get::<_, i64>(row, index).map(Decimal::from)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" => get::<_, u64>(row, index).map(Decimal::from),
        "FLOAT" => get::<_, f32>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        "DOUBLE" => get::<_, f64>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        _ => return None,
    })
}

/// SQLite types values, not columns: `type_name` is the value's own storage class.
pub(super) fn sqlite_number(
    row: &SqliteRow,
    index: usize,
    type_name: &str,
) -> Option<Result<Decimal, String>> {
    Some(match type_name {
        "INTEGER" => get::<_, i64>(row, index).map(Decimal::from),
        "REAL" => get::<_, f64>(row, index).and_then(|f| float_to_decimal(f.to_string())),
        "TEXT" => get::<_, String>(row, index).and_then(|text| {
            Decimal::from_str(text.trim())
                .map_err(|_| format!("text {text:?} is not a decimal number"))
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::orders::testing::Shop;
    use crate::orders::OrdersError;

    #[tokio::test]
    async fn non_numeric_text_and_fractional_counts_are_errors_naming_the_column_on_sqlite() {
        let shop = Shop::new().await;
        let text = shop.order_db("select email as ltv from orders where email = :email");
        let error = text.lookup("eve@example.com").await.unwrap_err();
        assert!(
            matches!(error, OrdersError::ColumnValue { column: "ltv", .. }),
            "{error:?}"
        );
        let fractional = shop.order_db("select 1 as ltv, 2.5 as disputes where :email <> ''");
        let error = fractional.lookup("eve@example.com").await.unwrap_err();
        assert!(error.to_string().contains("`disputes`"), "{error}");
        assert!(
            error.to_string().contains("2.5 is not a whole number"),
            "{error}"
        );
    }
}
