//! The query's other columns (beyond ltv, orders, disputes), read for `policy.rules`: numbers
//! exactly as decimals, text, booleans, NULL; a column of any other type is left out.

use std::collections::BTreeMap;

use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, ColumnIndex, Decode, Row, Type, TypeInfo, ValueRef};

use super::decode::NumberReader;
use crate::domain::ColumnValue;
use crate::policy::BUILT_IN_COLUMNS;

/// Reads a non-NULL value of a non-numeric runtime type, if rules can use it.
pub(super) type OtherReader<R> = fn(&R, usize, &str) -> Option<ColumnValue>;

/// Every extra column of `row`, by lower-cased name.
pub(super) fn extra_columns<R: Row>(
    row: &R,
    number: NumberReader<R>,
    other: OtherReader<R>,
) -> BTreeMap<String, ColumnValue>
where
    usize: ColumnIndex<R>,
{
    let mut extra = BTreeMap::new();
    for (index, column) in row.columns().iter().enumerate() {
        let name = column.name().to_ascii_lowercase();
        if BUILT_IN_COLUMNS.contains(&name.as_str()) || extra.contains_key(&name) {
            continue;
        }
        let Ok(raw) = row.try_get_raw(index) else {
            continue;
        };
        if raw.is_null() {
            extra.insert(name, ColumnValue::Null);
            continue;
        }
        let type_name = raw.type_info().name().to_owned();
        let value = match number(row, index, &type_name) {
            Some(Ok(d)) => Some(ColumnValue::Number(d)),
            _ => other(row, index, &type_name),
        };
        if let Some(value) = value {
            extra.insert(name, value);
        }
    }
    extra
}

fn get<'r, R: Row, T>(row: &'r R, index: usize) -> Option<T>
where
    T: Decode<'r, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    row.try_get(index).ok()
}

pub(super) fn pg_other(row: &PgRow, index: usize, type_name: &str) -> Option<ColumnValue> {
    match type_name {
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => get(row, index).map(ColumnValue::Text),
        "BOOL" => get(row, index).map(ColumnValue::Bool),
        _ => None,
    }
}

pub(super) fn mysql_other(row: &MySqlRow, index: usize, type_name: &str) -> Option<ColumnValue> {
    match type_name {
        "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" => {
            get(row, index).map(ColumnValue::Text)
        }
        "BOOLEAN" => get(row, index).map(ColumnValue::Bool),
        _ => None,
    }
}

pub(super) fn sqlite_other(row: &SqliteRow, index: usize, type_name: &str) -> Option<ColumnValue> {
    match type_name {
        "TEXT" => get(row, index).map(ColumnValue::Text),
        _ => None,
    }
}
