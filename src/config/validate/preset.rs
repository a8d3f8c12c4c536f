//! `orders.preset` / `orders.table_prefix`: fill `orders.query` and `orders.customers_query` from a preset.

use crate::config::raw::OrdersSettings;
use crate::config::{Settings, DEFAULT_TOML};
use crate::orders::presets::{check_prefix, IndexAdvice, Preset};
use crate::orders::Backend;

/// `orders.query` as the built-in defaults have it: a query equal to it was not written by hand.
fn default_query() -> Option<String> {
    let defaults: toml::Table = toml::from_str(DEFAULT_TOML).ok()?;
    defaults
        .get("orders")?
        .get("query")?
        .as_str()
        .map(str::to_owned)
}

/// The preset named in `o`, if any (errors name the key).
pub(crate) fn preset_of(o: &OrdersSettings) -> Result<Option<(Preset, String)>, String> {
    if o.preset.trim().is_empty() {
        return match &o.table_prefix {
            Some(_) => Err(
                "orders.table_prefix: only used with orders.preset; set a preset or remove it"
                    .into(),
            ),
            None => Ok(None),
        };
    }
    let preset = Preset::parse(&o.preset)?;
    let prefix = o
        .table_prefix
        .clone()
        .unwrap_or_else(|| preset.default_prefix().to_owned());
    check_prefix(&prefix)?;
    Ok(Some((preset, prefix)))
}

impl Settings {
    /// The indexes the configured preset's queries need (none without a preset), for the index check.
    pub fn index_advice(&self) -> Vec<IndexAdvice> {
        match preset_of(&self.orders) {
            Ok(Some((preset, prefix))) => preset.sql(&prefix).indexes,
            _ => Vec::new(),
        }
    }
}

/// Replaces the default `orders.query` (a hand-written one wins) and an empty
/// `orders.customers_query` with the preset's SQL.
pub(super) fn apply_preset(o: &mut OrdersSettings, errs: &mut Vec<String>) {
    let (preset, prefix) = match preset_of(o) {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => return errs.push(e),
    };
    let url = o.url.trim().to_ascii_lowercase();
    let backend_matches = match preset.backend() {
        Backend::MySql => url.starts_with("mysql://") || url.starts_with("mariadb://"),
        _ => url.starts_with("postgres://") || url.starts_with("postgresql://"),
    };
    if !url.is_empty() && !backend_matches {
        let wants = match preset.backend() {
            Backend::MySql => "a mysql:// or mariadb:// orders.url",
            _ => "a postgres:// orders.url",
        };
        return errs.push(format!(
            "orders.preset: {:?} reads {wants}; orders.url is another kind of database",
            o.preset.trim()
        ));
    }
    let sql = preset.sql(&prefix);
    if default_query().is_some_and(|d| d == o.query) {
        o.query = sql.query;
    }
    if o.customers_query.trim().is_empty() {
        o.customers_query = sql.customers_query;
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{errors_of, raw};

    const HELPDESK: &str =
        "[zendesk]\nsubdomain = \"acme\"\nemail = \"a@b.c\"\napi_token = \"t\"\nwebhook_secret = \"s\"\n";

    fn settings(orders: &str) -> crate::config::Settings {
        raw(&format!("{orders}{HELPDESK}"))
            .and_then(|r| r.validate())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const MAGENTO: &str = "[orders]\nurl = \"mysql://reader@db/shop\"\npreset = \"magento2\"\n";

    #[test]
    fn a_preset_fills_both_queries_with_the_platforms_tables() {
        let s = settings(&format!("{MAGENTO}table_prefix = \"m2_\"\n"));
        assert!(
            s.orders.query.contains("from m2_sales_order"),
            "{}",
            s.orders.query
        );
        assert!(s
            .orders
            .customers_query
            .contains("group by lower(customer_email)"));
    }

    #[test]
    fn a_hand_written_query_wins_over_the_preset() {
        let s = settings(&format!(
            "{MAGENTO}query = \"select 1 as ltv from mine where e = :email\"\n"
        ));
        assert_eq!(s.orders.query, "select 1 as ltv from mine where e = :email");
        assert!(s.orders.customers_query.contains("sales_order"));
    }

    #[test]
    fn bad_preset_settings_are_errors_naming_the_key() {
        let cases = [
            ("[orders]\nurl = \"mysql://db/shop\"\npreset = \"shopify\"\n", "orders.preset: \"shopify\" is not one of"),
            ("[orders]\nurl = \"postgres://db/shop\"\npreset = \"woocommerce\"\n", "orders.preset: \"woocommerce\" reads a mysql://"),
            ("[orders]\nurl = \"mysql://db/shop\"\npreset = \"woocommerce\"\ntable_prefix = \"wp_;--\"\n", "orders.table_prefix:"),
            ("[orders]\nurl = \"mysql://db/shop\"\ntable_prefix = \"wp_\"\n", "orders.table_prefix: only used with orders.preset"),
        ];
        for (toml, expected) in cases {
            let errs = errors_of(&format!("{toml}{HELPDESK}"));
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "{expected}: {errs:?}"
            );
        }
    }
}
