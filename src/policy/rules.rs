//! `policy.rules` and `policy.dispute_when`: CEL conditions parsed by the `cel` crate and
//! evaluated here on exact decimals, keeping the comparisons that decided them for `explain`.
//!
//! CEL has no decimal type and its doubles would make `refunded / gross >= 0.5` inexact, so only
//! the parser comes from the crate: this evaluator walks its syntax tree with `rust_decimal`
//! (`+ - * %` exact, `/` exact to 28 significant digits). The subset: numbers, strings, `true`,
//! `false`, `null`, column names, `+ - * / %`, unary `-`, `== != < <= > >=`, `&& || !`, `? :`
//! and parentheses. Anything else (functions, lists, maps, fields) is refused when the
//! configuration is read.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use cel::common::ast::{operators, CallExpr, Expr, LiteralValue};
use cel::parser::Parser;
use cel::IdedExpr;
use rust_decimal::Decimal;

use crate::domain::{ColumnValue, CustomerStats, Tag};

/// The columns every row has (missing ones read as 0).
pub const BUILT_IN_COLUMNS: [&str; 3] = ["ltv", "orders", "disputes"];

/// One `policy.rules` entry: `tag` when `when` holds.
#[derive(Debug, Clone)]
pub struct Rule {
    pub tag: Tag,
    pub when: Condition,
}

/// A parsed, checked condition.
#[derive(Clone)]
pub struct Condition {
    source: String,
    expr: IdedExpr,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({:?})", self.source)
    }
}

/// What a condition said for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub matched: bool,
    /// The comparisons evaluated, as facts that hold ("orders 4 ≥ 3", "0.62 ≥ 0.5").
    pub because: Vec<String>,
    /// Why it could not be decided (a NULL or missing column, a division by zero): no match.
    pub error: Option<String>,
}

impl Verdict {
    /// "orders 4 ≥ 3 and 0.62 ≥ 0.5", or the error.
    pub fn describe(&self) -> String {
        match &self.error {
            Some(e) => format!("not decided: {e}"),
            None if self.because.is_empty() => format!("{}", self.matched),
            None => self.because.join(" and "),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Num(Decimal),
    Str(String),
    Bool(bool),
    Null,
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Num(d) if d.scale() > 4 => write!(f, "≈{}", d.round_dp(4).normalize()),
            Val::Num(d) => write!(f, "{}", d.normalize()),
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Null => f.write_str("null"),
        }
    }
}

const COMPARISONS: [&str; 6] = [
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
];
const ARITHMETIC: [&str; 5] = [
    operators::ADD,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
];

impl Condition {
    /// Parses `source` and checks it stays within the supported subset.
    pub fn parse(source: &str) -> Result<Condition, String> {
        if source.trim().is_empty() {
            return Err("the condition is empty".into());
        }
        let expr = Parser::new()
            .parse(source)
            .map_err(|e| format!("syntax error: {}", e.to_string().replace('\n', "; ")))?;
        check(&expr)?;
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The column names the condition reads, lower-cased.
    pub fn columns(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        collect_idents(&self.expr, &mut names);
        names
    }

    /// Evaluates the condition for one customer; anything but `true` is no match.
    pub fn eval(&self, facts: &CustomerStats) -> Verdict {
        let mut because = Vec::new();
        match eval(&self.expr, facts, &mut because) {
            Ok(Val::Bool(matched)) => Verdict {
                matched,
                because,
                error: None,
            },
            Ok(other) => Verdict {
                matched: false,
                because,
                error: Some(format!("the condition gave {other}, not true or false")),
            },
            Err(e) => Verdict {
                matched: false,
                because,
                error: Some(e),
            },
        }
    }
}

fn call_name(call: &CallExpr) -> &str {
    call.func_name.as_str()
}

fn check(e: &IdedExpr) -> Result<(), String> {
    match &e.expr {
        Expr::Ident(_) => Ok(()),
        Expr::Literal(LiteralValue::Bytes(_)) => Err("bytes literals are not supported".into()),
        Expr::Literal(_) => Ok(()),
        Expr::Call(call) => {
            let name = call_name(call);
            let known = COMPARISONS.contains(&name)
                || ARITHMETIC.contains(&name)
                || [
                    operators::LOGICAL_AND,
                    operators::LOGICAL_OR,
                    operators::LOGICAL_NOT,
                    operators::NEGATE,
                    operators::CONDITIONAL,
                ]
                .contains(&name);
            if !known || call.target.is_some() {
                return Err(format!(
                    "`{}` is not supported (use numbers, column names, + - * / %, comparisons, && || ! and ? :)",
                    name.trim_matches('_')
                ));
            }
            call.args.iter().try_for_each(check)
        }
        Expr::Select(s) => Err(format!(
            "`.{}`: fields are not supported (columns are plain names)",
            s.field
        )),
        _ => Err("lists, maps, structs and macros are not supported".into()),
    }
}

fn collect_idents(e: &IdedExpr, names: &mut BTreeSet<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            names.insert(name.to_ascii_lowercase());
        }
        Expr::Call(call) => call.args.iter().for_each(|a| collect_idents(a, names)),
        _ => {}
    }
}

fn column(name: &str, facts: &CustomerStats) -> Result<Val, String> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "ltv" => Val::Num(facts.ltv),
        "orders" => Val::Num(facts.orders.into()),
        "disputes" => Val::Num(facts.disputes.into()),
        _ => match facts.extra.get(&lower) {
            Some(ColumnValue::Number(d)) => Val::Num(*d),
            Some(ColumnValue::Text(s)) => Val::Str(s.clone()),
            Some(ColumnValue::Bool(b)) => Val::Bool(*b),
            Some(ColumnValue::Null) => Val::Null,
            None => {
                return Err(format!(
                    "column `{name}` is not in the row (or has a type rules cannot read)"
                ))
            }
        },
    })
}

fn literal(l: &LiteralValue) -> Result<Val, String> {
    Ok(match l {
        LiteralValue::Boolean(b) => Val::Bool(*b.inner()),
        LiteralValue::Int(i) => Val::Num(Decimal::from(*i.inner())),
        LiteralValue::UInt(u) => Val::Num(Decimal::from(*u.inner())),
        // The literal's shortest spelling: `0.5` is exactly 0.5, never 0.5000000000000001.
        LiteralValue::Double(d) => Val::Num(
            Decimal::from_str(&d.inner().to_string())
                .map_err(|_| format!("{} is not a usable number", d.inner()))?,
        ),
        LiteralValue::String(s) => Val::Str(s.to_string()),
        LiteralValue::Null => Val::Null,
        LiteralValue::Bytes(_) => return Err("bytes literals are not supported".into()),
    })
}

fn truth(e: &IdedExpr, facts: &CustomerStats, trail: &mut Vec<String>) -> Result<bool, String> {
    match eval(e, facts, trail)? {
        Val::Bool(b) => Ok(b),
        other => Err(format!("{other} is not true or false")),
    }
}

fn eval(e: &IdedExpr, facts: &CustomerStats, trail: &mut Vec<String>) -> Result<Val, String> {
    let call = match &e.expr {
        Expr::Ident(name) => return column(name, facts),
        Expr::Literal(l) => return literal(l),
        Expr::Call(call) => call,
        _ => return Err("unsupported expression".into()),
    };
    let args = &call.args;
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| "malformed expression".to_string())
    };
    match call_name(call) {
        // CEL's && and || are commutative: a decided side wins over an error on the other.
        op @ (operators::LOGICAL_AND | operators::LOGICAL_OR) => {
            let decisive = op == operators::LOGICAL_OR;
            let left = truth(arg(0)?, facts, trail);
            if left == Ok(decisive) {
                return Ok(Val::Bool(decisive));
            }
            let right = truth(arg(1)?, facts, trail);
            match (left, right) {
                (_, Ok(r)) if r == decisive => Ok(Val::Bool(decisive)),
                (Ok(_), Ok(r)) => Ok(Val::Bool(r)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        operators::LOGICAL_NOT => Ok(Val::Bool(!truth(arg(0)?, facts, trail)?)),
        operators::CONDITIONAL => {
            if truth(arg(0)?, facts, trail)? {
                eval(arg(1)?, facts, trail)
            } else {
                eval(arg(2)?, facts, trail)
            }
        }
        operators::NEGATE => match eval(arg(0)?, facts, trail)? {
            Val::Num(d) => Ok(Val::Num(-d)),
            other => Err(format!("cannot negate {other}")),
        },
        op if ARITHMETIC.contains(&op) => {
            let (l, r) = (eval(arg(0)?, facts, trail)?, eval(arg(1)?, facts, trail)?);
            arithmetic(op, &l, &r)
        }
        op if COMPARISONS.contains(&op) => {
            let (le, re) = (arg(0)?, arg(1)?);
            let (l, r) = (eval(le, facts, trail)?, eval(re, facts, trail)?);
            let holds = compare(op, &l, &r)?;
            trail.push(format!(
                "{} {} {}",
                operand(le, &l),
                symbol(op, holds),
                operand(re, &r)
            ));
            Ok(Val::Bool(holds))
        }
        other => Err(format!("`{other}` is not supported")),
    }
}

fn arithmetic(op: &str, l: &Val, r: &Val) -> Result<Val, String> {
    let (Val::Num(a), Val::Num(b)) = (l, r) else {
        return Err(format!("cannot compute {l} {} {r}", op.trim_matches('_')));
    };
    let result = match op {
        operators::ADD => a.checked_add(*b),
        operators::SUBSTRACT => a.checked_sub(*b),
        operators::MULTIPLY => a.checked_mul(*b),
        operators::DIVIDE | operators::MODULO if b.is_zero() => {
            return Err(format!("division by zero ({a} / {b})"))
        }
        operators::DIVIDE => a.checked_div(*b),
        _ => a.checked_rem(*b),
    };
    result
        .map(Val::Num)
        .ok_or_else(|| format!("{a} {} {b} overflows", op.trim_matches('_')))
}

fn compare(op: &str, l: &Val, r: &Val) -> Result<bool, String> {
    let equality = matches!(op, operators::EQUALS | operators::NOT_EQUALS);
    let ordering = match (l, r) {
        (Val::Num(a), Val::Num(b)) => Some(a.cmp(b)),
        (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
        (Val::Bool(a), Val::Bool(b)) if equality => Some(a.cmp(b)),
        (Val::Null, Val::Null) if equality => Some(Ordering::Equal),
        _ if equality && (*l == Val::Null || *r == Val::Null) => None,
        _ => return Err(format!("cannot compare {l} with {r}")),
    };
    Ok(match (op, ordering) {
        (operators::EQUALS, o) => o == Some(Ordering::Equal),
        (operators::NOT_EQUALS, o) => o != Some(Ordering::Equal),
        (operators::LESS, Some(o)) => o.is_lt(),
        (operators::LESS_EQUALS, Some(o)) => o.is_le(),
        (operators::GREATER, Some(o)) => o.is_gt(),
        (_, Some(o)) => o.is_ge(),
        (_, None) => false,
    })
}

/// The comparison as a fact that holds: `4 >= 3` true reads "≥", false reads "<".
fn symbol(op: &str, holds: bool) -> &'static str {
    match (op, holds) {
        (operators::EQUALS, true) | (operators::NOT_EQUALS, false) => "=",
        (operators::EQUALS, false) | (operators::NOT_EQUALS, true) => "≠",
        (operators::LESS, true) | (operators::GREATER_EQUALS, false) => "<",
        (operators::LESS_EQUALS, true) | (operators::GREATER, false) => "≤",
        (operators::GREATER, true) | (operators::LESS_EQUALS, false) => ">",
        _ => "≥",
    }
}

/// A column shows its name and value ("orders 4"); anything else its value.
fn operand(e: &IdedExpr, v: &Val) -> String {
    match &e.expr {
        Expr::Ident(name) => format!("{name} {v}"),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ltv: &str, orders: i64, extra: &[(&str, ColumnValue)]) -> CustomerStats {
        CustomerStats {
            ltv: ltv.parse().expect("decimal"),
            orders,
            disputes: 0,
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
        }
    }

    fn num(s: &str) -> ColumnValue {
        ColumnValue::Number(s.parse().expect("decimal"))
    }

    #[test]
    fn a_serial_returner_is_explained_by_the_comparisons_that_held() {
        let c = Condition::parse("orders >= 3 && refunded / gross >= 0.5").expect("parses");
        let f = facts("100", 4, &[("refunded", num("310")), ("gross", num("500"))]);
        let v = c.eval(&f);
        assert!(v.matched, "{v:?}");
        assert_eq!(v.describe(), "orders 4 ≥ 3 and 0.62 ≥ 0.5");
        let f = facts("100", 1, &[("refunded", num("310")), ("gross", num("500"))]);
        let v = c.eval(&f);
        assert!(!v.matched);
        assert_eq!(v.describe(), "orders 1 < 3");
    }

    #[test]
    fn money_comparisons_are_exact_where_doubles_are_not() {
        // In doubles 0.1 + 0.2 > 0.3; in decimals it is equal.
        let c = Condition::parse("a + b == 0.3 && ltv >= 499.99").expect("parses");
        let f = facts("499.99", 0, &[("a", num("0.1")), ("b", num("0.2"))]);
        assert!(c.eval(&f).matched, "{:?}", c.eval(&f));
        let f = facts("499.989999", 0, &[("a", num("0.1")), ("b", num("0.2"))]);
        assert!(!c.eval(&f).matched);
    }

    #[test]
    fn a_division_by_zero_or_a_null_column_is_no_match_with_its_reason() {
        let c = Condition::parse("refunded / gross >= 0.5").expect("parses");
        let v = c.eval(&facts(
            "0",
            0,
            &[("refunded", num("0")), ("gross", num("0"))],
        ));
        assert!(!v.matched);
        assert!(v.describe().contains("division by zero"), "{v:?}");
        let v = c.eval(&facts(
            "0",
            0,
            &[("refunded", ColumnValue::Null), ("gross", num("1"))],
        ));
        assert!(!v.matched);
        assert!(v.describe().contains("null"), "{v:?}");
        // A decided side of && wins over an error on the other side.
        let c = Condition::parse("orders >= 3 && refunded / gross >= 0.5").expect("parses");
        let v = c.eval(&facts(
            "0",
            0,
            &[("refunded", num("0")), ("gross", num("0"))],
        ));
        assert_eq!((v.matched, v.error), (false, None));
    }

    #[test]
    fn text_and_booleans_compare_and_columns_are_listed_lower_cased() {
        let c =
            Condition::parse("Status == \"lost\" || (won ? false : Disputes > 0)").expect("parses");
        assert_eq!(
            c.columns().into_iter().collect::<Vec<_>>(),
            ["disputes", "status", "won"]
        );
        let f = facts(
            "0",
            0,
            &[
                ("status", ColumnValue::Text("lost".into())),
                ("won", ColumnValue::Bool(false)),
            ],
        );
        assert!(c.eval(&f).matched);
    }

    #[test]
    fn syntax_errors_and_unsupported_features_are_refused() {
        for bad in [
            "",
            "orders >=",
            "size(orders) > 1",
            "orders.x > 1",
            "[1, 2]",
            "orders in [1]",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Condition::parse("orders >= && 1").unwrap_err();
        assert!(e.starts_with("syntax error"), "{e}");
    }
}
