//! `explain EMAIL`: what the service would decide for one customer, writing nothing.

use crate::config::Settings;
use crate::domain::{CustomerEmail, Tag};
use crate::orders::OrderDb;

pub(super) async fn explain(s: Settings, email: String) -> anyhow::Result<()> {
    let email = CustomerEmail::parse(&email).map_err(anyhow::Error::msg)?;
    let db = OrderDb::connect_lazy(&s.orders_options())?;
    match db.lookup(email.as_str()).await? {
        None => println!("{email}: unknown customer (the query returned no row): no tags"),
        Some(stats) => {
            let tags = s.policy.decide(&stats);
            let tags: Vec<String> = tags.iter().map(Tag::to_string).collect();
            println!(
                "{email}: ltv {} over {} orders, {} disputes → tags: {}",
                stats.ltv.normalize(),
                stats.orders,
                stats.disputes,
                if tags.is_empty() {
                    "(none)".into()
                } else {
                    tags.join(", ")
                }
            );
        }
    }
    Ok(())
}
