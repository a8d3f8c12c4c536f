//! What `orders.query`'s text says about its tables, for the index check: aliases, the expression compared with `:email`, the `create index` to suggest.

use std::collections::HashMap;

use super::placeholders::email_offsets;
use super::Backend;

/// What the query text says about its tables: alias → table, table → the expression compared
/// with `:email` (qualifier stripped).
pub(super) struct SqlNames {
    tables: HashMap<String, String>,
    email_expr: HashMap<String, String>,
    unqualified_email: Option<String>,
}

const NOT_ALIASES: &[&str] = &[
    "where",
    "join",
    "left",
    "right",
    "inner",
    "outer",
    "on",
    "group",
    "order",
    "limit",
    "cross",
    "natural",
    "full",
    "using",
    "union",
    "having",
    "and",
    "or",
    "select",
    "straight_join",
];

impl SqlNames {
    pub(super) fn of(query: &str, backend: Backend) -> SqlNames {
        let spaced: String = query
            .chars()
            .map(|c| if matches!(c, '(' | ')' | ',') { ' ' } else { c })
            .collect();
        let words: Vec<&str> = spaced.split_whitespace().collect();
        let mut tables = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            if !(w.eq_ignore_ascii_case("from") || w.eq_ignore_ascii_case("join")) {
                continue;
            }
            let Some(table) = words.get(i + 1) else {
                continue;
            };
            if table.eq_ignore_ascii_case("select") {
                continue;
            }
            tables.insert(table.to_ascii_lowercase(), table.to_string());
            let mut alias = words.get(i + 2).copied();
            if alias.is_some_and(|a| a.eq_ignore_ascii_case("as")) {
                alias = words.get(i + 3).copied();
            }
            if let Some(a) = alias.filter(|a| {
                !NOT_ALIASES.iter().any(|k| a.eq_ignore_ascii_case(k)) && !a.contains('=')
            }) {
                tables.insert(a.to_ascii_lowercase(), table.to_string());
            }
        }
        let mut names = SqlNames {
            tables,
            email_expr: HashMap::new(),
            unqualified_email: None,
        };
        for at in email_offsets(query.as_bytes(), backend) {
            let Some(expr) = compared_expression(&query[..at]) else {
                continue;
            };
            match qualifier_of(&expr) {
                Some(q) => {
                    let table = names.table_of(q);
                    let bare = expr.replace(&format!("{q}."), "");
                    names.email_expr.entry(table).or_insert(bare);
                }
                None => {
                    names.unqualified_email.get_or_insert(expr);
                }
            }
        }
        names
    }

    /// The table an alias (or a table name) in the plan stands for.
    pub(super) fn table_of(&self, name: &str) -> String {
        self.tables
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    /// The column of `table` the query compares with `:email`, and whether a function wraps it
    /// (`lower(email)`). An unqualified comparison counts only when the query reads one table.
    pub(super) fn email_column(&self, table: &str) -> Option<(String, bool)> {
        let mut distinct: Vec<&String> = self.tables.values().collect();
        distinct.sort();
        distinct.dedup();
        let expr = self.email_expr.get(table).or_else(|| {
            (distinct.len() == 1)
                .then_some(self.unqualified_email.as_ref())
                .flatten()
        })?;
        let (inner, wrapped) = match (expr.find('('), expr.rfind(')')) {
            (Some(open), Some(close)) if open < close => (&expr[open + 1..close], true),
            _ => (expr.as_str(), false),
        };
        let column = inner.rsplit('.').next().unwrap_or(inner);
        let column = column.trim().trim_matches(|c| c == '`' || c == '"');
        let plain = !column.is_empty()
            && column
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
        plain.then(|| (column.to_owned(), wrapped))
    }

    /// A `create index` for `table` on the expression the query compares with `:email`.
    pub(super) fn suggest(&self, table: &str, backend: Backend) -> String {
        let expr = self
            .email_expr
            .get(table)
            .or(self.unqualified_email.as_ref());
        let name = format!(
            "ltv_tagger_{}_email",
            table
                .rsplit('.')
                .next()
                .unwrap_or(table)
                .trim_matches(|c| c == '"' || c == '`')
        );
        let Some(expr) = expr else {
            return format!(
                "create an index on the column(s) of {table} the query filters or joins it by"
            );
        };
        let is_call = expr.contains('(');
        match backend {
            Backend::Postgres if is_call => format!("create index {name} on {table} (({expr}))"),
            Backend::MySql if is_call => {
                let column = expr
                    .split_once('(')
                    .map(|(_, rest)| rest.trim_end_matches(')').trim())
                    .unwrap_or(expr);
                format!(
                    "create index {name} on {table} ({column}), and compare `{column} = :email` \
                     without {expr}: MySQL/MariaDB collations ending in _ci already ignore case, \
                     and an index on the column cannot serve a function of it"
                )
            }
            _ => format!("create index {name} on {table} ({expr})"),
        }
    }
}

/// In `… lower(c.email) = ` (the text before a `:email`), the expression left of the `=`.
fn compared_expression(before: &str) -> Option<String> {
    let before = before.trim_end().strip_suffix('=')?.trim_end();
    let bytes = before.as_bytes();
    let mut start = bytes.len();
    if bytes.last() == Some(&b')') {
        let mut depth = 0usize;
        while start > 0 {
            start -= 1;
            match bytes[start] {
                b')' => depth += 1,
                b'(' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let ident = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'"' | b'`' | b'$');
    while start > 0 && ident(bytes[start - 1]) {
        start -= 1;
    }
    let expr = before[start..].trim();
    (!expr.is_empty()).then(|| expr.to_owned())
}

/// `lower(c.email)` → `c`; `email` → None.
fn qualifier_of(expr: &str) -> Option<&str> {
    let inner = expr
        .rsplit_once('(')
        .map_or(expr, |(_, rest)| rest)
        .trim_end_matches(')');
    inner.split_once('.').map(|(q, _)| q.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::plan::inline_email;

    #[test]
    fn suggestions_index_the_expression_compared_with_email() {
        let q = "select sum(total) as ltv, (select count(*) from chargebacks c \
                 where lower(c.email) = :email) as disputes from orders \
                 where lower(email) = :email and status = 'paid'";
        let names = SqlNames::of(q, Backend::Postgres);
        assert_eq!(names.table_of("c"), "chargebacks");
        assert_eq!(
            names.suggest("chargebacks", Backend::Postgres),
            "create index ltv_tagger_chargebacks_email on chargebacks ((lower(email)))"
        );
        assert_eq!(
            names.suggest("orders", Backend::Sqlite),
            "create index ltv_tagger_orders_email on orders (lower(email))"
        );
        assert!(names.suggest("orders", Backend::MySql).starts_with(
            "create index ltv_tagger_orders_email on orders (email), and compare `email = :email`"
        ));
        assert_eq!(
            inline_email("where e = :email and ':email' = x", Backend::Sqlite),
            "where e = 'nobody@example.invalid' and ':email' = x"
        );
    }
}
