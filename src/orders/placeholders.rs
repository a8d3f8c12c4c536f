//! Rewriting `:email` in the operator's query into each driver's placeholder syntax (pure).

use super::{Backend, OrdersConfigError};

const EMAIL: &[u8] = b":email";

/// Rewrite `:email` into the driver's placeholder syntax; returns (sql, number_of_bind_parameters_to_bind).
///
/// Postgres gets `$1` and SQLite `?1` at every occurrence (bind once); MySQL gets `?` at every
/// occurrence (bind the email once per occurrence). Untouched: quoted strings ('…', with '' and, on
/// MySQL, backslash escapes), "…" and `…` identifiers, `--` comments (`-- ` and `#` on MySQL), `/* */`
/// comments (nested on Postgres), casts such as `x::email`, and longer names such as `:emails`.
pub fn bind_email_placeholders(
    query: &str,
    backend: Backend,
) -> Result<(String, usize), OrdersConfigError> {
    let offsets = email_offsets(query.as_bytes(), backend);
    if offsets.is_empty() {
        return Err(OrdersConfigError::NoEmailPlaceholder);
    }
    let placeholder = match backend {
        Backend::Postgres => "$1",
        Backend::MySql => "?",
        Backend::Sqlite => "?1",
    };
    let mut sql = String::with_capacity(query.len());
    let mut copied = 0;
    // Every offset and end is next to an ASCII byte, so each slice is on a char boundary.
    for &at in &offsets {
        sql.push_str(&query[copied..at]);
        sql.push_str(placeholder);
        copied = at + EMAIL.len();
    }
    sql.push_str(&query[copied..]);
    let binds = match backend {
        Backend::MySql => offsets.len(),
        Backend::Postgres | Backend::Sqlite => 1,
    };
    Ok((sql, binds))
}

/// Byte offsets of the `:email` placeholders outside quotes and comments.
pub(super) fn email_offsets(sql: &[u8], backend: Backend) -> Vec<usize> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        let next = sql.get(i + 1).copied();
        i = match (sql[i], next) {
            (quote @ (b'\'' | b'"' | b'`'), _) => skip_quoted(sql, i, quote, backend),
            (b'-', Some(b'-')) if starts_line_comment(sql, i, backend) => skip_line(sql, i),
            (b'#', _) if backend == Backend::MySql => skip_line(sql, i),
            (b'/', Some(b'*')) => skip_block_comment(sql, i, backend),
            (b':', Some(b':')) => i + 2,
            (b':', _) if is_email_placeholder(sql, i) => {
                found.push(i);
                i + EMAIL.len()
            }
            _ => i + 1,
        };
    }
    found
}

fn is_email_placeholder(sql: &[u8], at: usize) -> bool {
    let continues_name =
        |c: &u8| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$' || !c.is_ascii();
    sql[at..].starts_with(EMAIL) && !sql.get(at + EMAIL.len()).is_some_and(continues_name)
}

/// The offset just past the quoted text opening at `start` (or the end, if it never closes).
fn skip_quoted(sql: &[u8], start: usize, quote: u8, backend: Backend) -> usize {
    let backslash_escapes = backend == Backend::MySql && quote != b'`';
    let mut i = start + 1;
    while i < sql.len() {
        match sql[i] {
            b'\\' if backslash_escapes => i += 2,
            c if c == quote && sql.get(i + 1) == Some(&quote) => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    sql.len()
}

/// `--` at `at` opens a comment, except on MySQL when no whitespace follows (`x--1` is arithmetic).
fn starts_line_comment(sql: &[u8], at: usize, backend: Backend) -> bool {
    backend != Backend::MySql || sql.get(at + 2).map_or(true, u8::is_ascii_whitespace)
}

fn skip_line(sql: &[u8], start: usize) -> usize {
    sql[start..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(sql.len(), |n| start + n + 1)
}

fn skip_block_comment(sql: &[u8], start: usize, backend: Backend) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < sql.len() {
        if sql[i..].starts_with(b"/*") && (depth == 0 || backend == Backend::Postgres) {
            depth += 1;
            i += 2;
        } else if sql[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    sql.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::testing::DEFAULT_QUERY;
    use proptest::prelude::*;

    #[test]
    fn default_query_placeholders_become_each_drivers_syntax() {
        let rewrite = |backend| bind_email_placeholders(DEFAULT_QUERY, backend).unwrap();
        let pg = DEFAULT_QUERY.replace(":email", "$1");
        assert_eq!(rewrite(Backend::Postgres), (pg, 1));
        let sqlite = DEFAULT_QUERY.replace(":email", "?1");
        assert_eq!(rewrite(Backend::Sqlite), (sqlite, 1));
        let mysql = DEFAULT_QUERY.replace(":email", "?");
        assert_eq!(rewrite(Backend::MySql), (mysql, 2));
    }

    #[test]
    fn email_in_strings_identifiers_and_comments_is_left_alone() {
        let query = "select ':email', 'it''s :email', \"a:email\", `:email` -- :email\n\
                     /* :email */ as ltv from t where e = :email";
        let (sql, binds) = bind_email_placeholders(query, Backend::MySql).unwrap();
        assert_eq!(binds, 1);
        assert_eq!(sql, query.replacen("e = :email", "e = ?", 1));
    }

    #[test]
    fn casts_and_longer_names_are_not_placeholders() {
        let query = "select x::email, y::text, :emails, :email_x, :email$ as ltv where e=:email)";
        let (sql, binds) = bind_email_placeholders(query, Backend::Postgres).unwrap();
        assert_eq!(binds, 1);
        assert_eq!(sql, query.replace("e=:email)", "e=$1)"));
    }

    #[test]
    fn mysql_backslash_escapes_and_hash_comments_hide_email_and_bare_double_dash_does_not() {
        let query = "select 'it\\'s :email' as ltv # :email\nwhere e = :email";
        let (sql, binds) = bind_email_placeholders(query, Backend::MySql).unwrap();
        assert_eq!((sql.matches('?').count(), binds), (1, 1));
        // On MySQL `--` needs whitespace after it to start a comment.
        let (sql, _) =
            bind_email_placeholders("select 1--1 as ltv, :email", Backend::MySql).unwrap();
        assert_eq!(sql, "select 1--1 as ltv, ?");
        // On Postgres a backslash is an ordinary character, `#` an operator and `--` a comment.
        let (sql, _) =
            bind_email_placeholders("select :email # 1--:email", Backend::Postgres).unwrap();
        assert_eq!(sql, "select $1 # 1--:email");
    }

    #[test]
    fn postgres_block_comments_nest() {
        let query = "select /* a /* :email */ :email */ 1 as ltv where e = :email";
        let (sql, _) = bind_email_placeholders(query, Backend::Postgres).unwrap();
        assert_eq!(sql.matches("$1").count(), 1);
        let (sql, binds) = bind_email_placeholders(query, Backend::MySql).unwrap();
        assert_eq!((sql.matches('?').count(), binds), (2, 2));
    }

    #[test]
    fn unterminated_quotes_and_comments_hide_the_rest() {
        for query in ["select 'x :email", "select /* :email", "select \"x :email"] {
            assert!(
                bind_email_placeholders(query, Backend::Postgres).is_err(),
                "{query}"
            );
        }
    }

    /// A piece of SQL and how many `:email` placeholders it holds.
    fn fragment() -> impl Strategy<Value = (String, usize)> {
        let word = "[a-z0-9_ =(),.]{0,8}";
        prop_oneof![
            Just((":email".to_owned(), 1)),
            word.prop_map(|w| (w, 0)),
            word.prop_map(|w| (format!("'{w} :email ''{w}'"), 0)),
            word.prop_map(|w| (format!("\"{w}:email\""), 0)),
            word.prop_map(|w| (format!("`:email{w}`"), 0)),
            word.prop_map(|w| (format!("-- {w} :email\n"), 0)),
            word.prop_map(|w| (format!("/* {w} :email */"), 0)),
            Just(("x::email".to_owned(), 0)),
            Just((":emails".to_owned(), 0)),
            Just((":email_x".to_owned(), 0)),
        ]
    }

    proptest! {
        #[test]
        fn placeholders_outside_quotes_are_counted_and_rewritten(
            fragments in prop::collection::vec(fragment(), 0..12)
        ) {
            let query = fragments.iter().map(|(sql, _)| sql.as_str()).collect::<Vec<_>>().join(" ");
            let expected: usize = fragments.iter().map(|(_, n)| n).sum();
            for (backend, placeholder) in
                [(Backend::Postgres, "$1"), (Backend::Sqlite, "?1"), (Backend::MySql, "?")]
            {
                match bind_email_placeholders(&query, backend) {
                    Err(OrdersConfigError::NoEmailPlaceholder) => prop_assert_eq!(expected, 0),
                    Err(other) => prop_assert!(false, "unexpected {other}"),
                    Ok((sql, binds)) => {
                        prop_assert_eq!(sql.matches(placeholder).count(), expected);
                        prop_assert_eq!(binds, if backend == Backend::MySql { expected } else { 1 });
                        prop_assert_eq!(sql.replace(placeholder, ":email"), query.clone());
                    }
                }
            }
        }

        #[test]
        fn rewriting_never_panics_and_touches_only_placeholders(
            query in "(:email|::|[:'\"`/*#\\\\\n -]|[a-z$_]|\\PC){0,40}"
        ) {
            for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
                if let Ok((sql, _)) = bind_email_placeholders(&query, backend) {
                    if backend == Backend::Postgres && !query.contains("$1") {
                        prop_assert_eq!(sql.replace("$1", ":email"), query.clone());
                    }
                }
            }
        }
    }
}
