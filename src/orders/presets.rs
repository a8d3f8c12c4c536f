//! Ready-made `orders.query` / `orders.customers_query` for shop platforms' own tables (`orders.preset`).
//!
//! Each preset reads the platform's published schema, nets refunds the way the platform records
//! them and counts paid states only:
//! - `woocommerce` (HPOS, `{p}wc_orders`, WooCommerce `OrdersTableDataStore::get_database_schema`):
//!   refunds are child rows (`type = 'shop_order_refund'`, `parent_order_id`) with negative
//!   `total_amount`; paid = `wc-processing`, `wc-completed`, `wc-refunded`. No disputes recorded.
//! - `woocommerce-legacy` (`{p}posts` + `{p}postmeta`, WordPress `wp-admin/includes/schema.php`):
//!   the same refund child posts, totals in the `_order_total` meta. No disputes recorded.
//! - `magento2` (`{p}sales_order`, `Magento/Sales/etc/db_schema.xml`): `base_grand_total -
//!   base_total_refunded`; paid = states `processing`, `complete`, `closed`. No disputes recorded.
//! - `prestashop` (`{p}customer`, `{p}orders`, `{p}order_slip`, PrestaShop
//!   `install-dev/data/db_structure.sql`): refunds are order slips (products + shipping, tax incl.);
//!   paid = `orders.valid = 1`. No disputes recorded.
//! - `shopify-fivetran` (`{p}"order"`, `{p}"transaction"`, Fivetran's Shopify schema ERD) and
//!   `shopify-airbyte` (`{p}orders`, `{p}transactions`, `{p}disputes`, Airbyte source-shopify
//!   streams, Postgres destination typed tables): refunds are successful transactions of kind
//!   `refund`; paid = financial status `paid`, `partially_refunded`, `refunded`; test orders
//!   excluded. Airbyte's `disputes` stream gives chargebacks; Fivetran's schema has no table the
//!   preset reads for disputes (0). Money is cast to `numeric`, so a sync that stores amounts as
//!   text or floats reads the same.
//!
//! On MySQL/MariaDB the presets compare `email = :email` without `lower()`: these platforms create
//! their tables with case-insensitive (`_ci`) collations, and a plain comparison can use an index.

use super::Backend;

/// The names `orders.preset` accepts.
pub const PRESET_NAMES: [&str; 6] = [
    "woocommerce",
    "woocommerce-legacy",
    "magento2",
    "prestashop",
    "shopify-fivetran",
    "shopify-airbyte",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    WooCommerce,
    WooCommerceLegacy,
    Magento2,
    PrestaShop,
    ShopifyFivetran,
    ShopifyAirbyte,
}

/// An index a preset's query needs: the table as the query names it and the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexAdvice {
    pub table: String,
    pub statement: String,
    /// The platform's own schema already creates it.
    pub shipped: bool,
}

/// What a preset supplies.
#[derive(Debug, Clone)]
pub struct PresetSql {
    pub query: String,
    pub customers_query: String,
    pub indexes: Vec<IndexAdvice>,
}

impl Preset {
    /// `orders.preset` → a preset; the error names the key and the accepted values.
    pub fn parse(name: &str) -> Result<Preset, String> {
        Ok(match name.trim() {
            "woocommerce" => Preset::WooCommerce,
            "woocommerce-legacy" => Preset::WooCommerceLegacy,
            "magento2" => Preset::Magento2,
            "prestashop" => Preset::PrestaShop,
            "shopify-fivetran" => Preset::ShopifyFivetran,
            "shopify-airbyte" => Preset::ShopifyAirbyte,
            other => {
                return Err(format!(
                    "orders.preset: {other:?} is not one of {}",
                    PRESET_NAMES.map(|n| format!("\"{n}\"")).join(", ")
                ))
            }
        })
    }

    /// The table prefix the platform uses unless told otherwise.
    pub fn default_prefix(self) -> &'static str {
        match self {
            Preset::WooCommerce | Preset::WooCommerceLegacy => "wp_",
            Preset::PrestaShop => "ps_",
            Preset::ShopifyFivetran => "shopify.",
            Preset::Magento2 | Preset::ShopifyAirbyte => "",
        }
    }

    /// The driver the preset's SQL is written for.
    pub fn backend(self) -> Backend {
        match self {
            Preset::ShopifyFivetran | Preset::ShopifyAirbyte => Backend::Postgres,
            _ => Backend::MySql,
        }
    }

    /// The SQL for tables named with `prefix` (checked by [`check_prefix`]).
    pub fn sql(self, prefix: &str) -> PresetSql {
        let t = |name: &str| format!("{prefix}{name}");
        match self {
            Preset::WooCommerce => woocommerce(&t("wc_orders")),
            Preset::WooCommerceLegacy => woocommerce_legacy(&t("posts"), &t("postmeta")),
            Preset::Magento2 => magento2(&t("sales_order")),
            Preset::PrestaShop => prestashop(&t("customer"), &t("orders"), &t("order_slip")),
            // Fivetran names its tables `order` and `transaction`: reserved words, so quoted.
            Preset::ShopifyFivetran => shopify(&t("\"order\""), &t("\"transaction\""), None),
            Preset::ShopifyAirbyte => {
                shopify(&t("orders"), &t("transactions"), Some(&t("disputes")))
            }
        }
    }
}

/// `orders.table_prefix`: letters, digits, `_`, `$`, and `.` after a schema name.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.')
        && !prefix.starts_with('.')
        && !prefix.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "orders.table_prefix: {prefix:?} may hold only letters, digits, `_`, `$` and a `.` after a schema name"
        ))
    }
}

/// A name for an index on `table`: the table's last part (no schema, no quotes) plus `suffix`.
fn index_name(table: &str, suffix: &str) -> String {
    let last = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
    format!("ltv_tagger_{last}_{suffix}")
}

fn advice(table: &str, suffix: &str, columns: &str, shipped: bool) -> IndexAdvice {
    IndexAdvice {
        table: table.to_owned(),
        statement: format!(
            "create index {} on {table} ({columns})",
            index_name(table, suffix)
        ),
        shipped,
    }
}

const WOO_PAID: &str = "('wc-processing', 'wc-completed', 'wc-refunded')";

fn woocommerce(orders: &str) -> PresetSql {
    let refunds = format!(
        "coalesce((select sum(r.total_amount) from {orders} r \
         where r.parent_order_id = o.id and r.type = 'shop_order_refund'), 0)"
    );
    let paid = format!("o.type = 'shop_order' and o.status in {WOO_PAID}");
    PresetSql {
        query: format!(
            "select coalesce(sum(o.total_amount + {refunds}), 0) as ltv, count(o.id) as orders, \
             0 as disputes\nfrom {orders} o\nwhere o.billing_email = :email and {paid}"
        ),
        customers_query: format!(
            "select lower(o.billing_email) as email, sum(o.total_amount + {refunds}) as ltv, \
             count(o.id) as orders, 0 as disputes\nfrom {orders} o\n\
             where o.billing_email <> '' and {paid}\ngroup by lower(o.billing_email)"
        ),
        indexes: vec![
            advice(orders, "billing_email", "billing_email(171)", true),
            advice(orders, "parent_order_id", "parent_order_id", true),
        ],
    }
}

fn woocommerce_legacy(posts: &str, meta: &str) -> PresetSql {
    let total = "cast(t.meta_value as decimal(26,8))";
    let refunds = format!(
        "coalesce((select sum(cast(rt.meta_value as decimal(26,8))) from {posts} r \
         join {meta} rt on rt.post_id = r.ID and rt.meta_key = '_order_total' \
         where r.post_parent = p.ID and r.post_type = 'shop_order_refund'), 0)"
    );
    let from = format!(
        "from {meta} e\njoin {posts} p on p.ID = e.post_id\n\
         join {meta} t on t.post_id = p.ID and t.meta_key = '_order_total'"
    );
    let paid = format!(
        "e.meta_key = '_billing_email' and p.post_type = 'shop_order' and p.post_status in {WOO_PAID}"
    );
    PresetSql {
        query: format!(
            "select coalesce(sum({total} + {refunds}), 0) as ltv, count(p.ID) as orders, \
             0 as disputes\n{from}\nwhere e.meta_value = :email and {paid}"
        ),
        customers_query: format!(
            "select lower(e.meta_value) as email, sum({total} + {refunds}) as ltv, \
             count(p.ID) as orders, 0 as disputes\n{from}\n\
             where e.meta_value <> '' and {paid}\ngroup by lower(e.meta_value)"
        ),
        indexes: vec![advice(
            meta,
            "billing_email",
            "meta_key(32), meta_value(191)",
            false,
        )],
    }
}

fn magento2(orders: &str) -> PresetSql {
    let net = "base_grand_total - coalesce(base_total_refunded, 0)";
    let paid = "state in ('processing', 'complete', 'closed')";
    PresetSql {
        query: format!(
            "select coalesce(sum({net}), 0) as ltv, count(*) as orders, 0 as disputes\n\
             from {orders}\nwhere customer_email = :email and {paid}"
        ),
        customers_query: format!(
            "select lower(customer_email) as email, sum({net}) as ltv, count(*) as orders, \
             0 as disputes\nfrom {orders}\nwhere customer_email <> '' and {paid}\n\
             group by lower(customer_email)"
        ),
        indexes: vec![advice(orders, "customer_email", "customer_email", false)],
    }
}

fn prestashop(customers: &str, orders: &str, slips: &str) -> PresetSql {
    let net = format!(
        "o.total_paid_tax_incl - coalesce((select sum(coalesce(s.total_products_tax_incl, 0) + \
         coalesce(s.total_shipping_tax_incl, 0)) from {slips} s where s.id_order = o.id_order), 0)"
    );
    let from = format!("from {customers} c\njoin {orders} o on o.id_customer = c.id_customer");
    PresetSql {
        query: format!(
            "select coalesce(sum({net}), 0) as ltv, count(o.id_order) as orders, 0 as disputes\n\
             {from}\nwhere c.email = :email and o.valid = 1"
        ),
        customers_query: format!(
            "select lower(c.email) as email, sum({net}) as ltv, count(o.id_order) as orders, \
             0 as disputes\n{from}\nwhere c.email <> '' and o.valid = 1\ngroup by lower(c.email)"
        ),
        indexes: vec![
            advice(customers, "email", "email", true),
            advice(orders, "id_customer", "id_customer", true),
            advice(slips, "id_order", "id_order", true),
        ],
    }
}

fn shopify(orders: &str, transactions: &str, disputes: Option<&str>) -> PresetSql {
    let net = format!(
        "cast(o.total_price as numeric) - coalesce((select sum(cast(t.amount as numeric)) from {transactions} t \
         where t.order_id = o.id and t.kind = 'refund' and t.status = 'success'), 0)"
    );
    let paid = "o.financial_status in ('paid', 'partially_refunded', 'refunded') \
                and not coalesce(o.test, false)";
    let chargebacks = |email: &str| match disputes {
        Some(d) => format!(
            "(select count(*) from {d} d join {orders} od on od.id = d.order_id \
             where lower(od.email) = {email} and d.type = 'chargeback')"
        ),
        None => "0".to_owned(),
    };
    let mut indexes = vec![
        advice(orders, "email", "(lower(email))", false),
        advice(transactions, "order_id", "order_id", false),
    ];
    if let Some(d) = disputes {
        indexes.push(advice(d, "order_id", "order_id", false));
    }
    PresetSql {
        query: format!(
            "select coalesce(sum({net}), 0) as ltv, count(o.id) as orders, {} as disputes\n\
             from {orders} o\nwhere lower(o.email) = :email and {paid}",
            chargebacks(":email")
        ),
        // Per order first: the dispute count is a subquery on the email, which a grouped
        // select cannot correlate with.
        customers_query: format!(
            "select email, sum(net) as ltv, count(*) as orders, max(disputes) as disputes\n\
             from (select lower(o.email) as email, {net} as net, {} as disputes\n\
             from {orders} o\nwhere o.email <> '' and {paid}) per_order\ngroup by email",
            chargebacks("lower(o.email)")
        ),
        indexes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::bind_email_placeholders;

    #[test]
    fn every_name_parses_and_unknown_names_are_refused_naming_the_key() {
        for name in PRESET_NAMES {
            let preset = Preset::parse(name).expect("a known preset");
            let sql = preset.sql(preset.default_prefix());
            bind_email_placeholders(&sql.query, preset.backend()).expect(":email present");
            assert!(!sql.customers_query.contains(":email"), "{name}");
        }
        let error = Preset::parse("shopify").unwrap_err();
        assert!(
            error.starts_with("orders.preset: \"shopify\" is not one of"),
            "{error}"
        );
    }

    #[test]
    fn prefixes_with_sql_in_them_are_refused() {
        for good in ["", "wp_", "shop2_", "shopify.", "shop.wp_"] {
            assert_eq!(check_prefix(good), Ok(()), "{good}");
        }
        for bad in ["wp_; drop table x", "a b", ".x", "x..y", "wp-", "\"x\""] {
            let error = check_prefix(bad).unwrap_err();
            assert!(error.starts_with("orders.table_prefix:"), "{error}");
        }
    }

    #[test]
    fn fivetran_tables_are_quoted_after_the_schema() {
        let sql = Preset::ShopifyFivetran.sql("shopify.");
        assert!(
            sql.query.contains("from shopify.\"order\" o"),
            "{}",
            sql.query
        );
        assert_eq!(
            sql.indexes[0].statement,
            "create index ltv_tagger_order_email on shopify.\"order\" ((lower(email)))"
        );
    }
}
