//! `check-config`: validate, print the settings in effect (secrets redacted), list the policy's tags.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::RawSettings;
use crate::domain::Tag;
use crate::orders::OrderDb;

pub(super) async fn check_config(file: Option<PathBuf>, query: bool) -> ExitCode {
    let raw = match RawSettings::load(file.as_deref(), "LTV_TAGGER") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let settings = match raw.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Show the URLs in effect (a `url_file` wins over `url`), passwords redacted.
    let mut shown = raw.clone();
    shown.state.url = settings.state.url.clone();
    shown.orders.url = settings.orders.url.clone();
    println!("{}", shown.to_redacted_toml());
    if query {
        let checked = async {
            let db = OrderDb::connect_lazy(&settings.orders_options())?;
            db.check_query().await?;
            anyhow::Ok(())
        };
        if let Err(e) = checked.await {
            eprintln!("orders.query: {e:#}");
            return ExitCode::from(1);
        }
        eprintln!("orders.query ran against the order DB and returned usable columns");
        if !settings.orders.customers_query.trim().is_empty() {
            let checked = async {
                let scan = crate::orders::CustomerScan::connect_lazy(
                    &settings.orders_options(),
                    &settings.orders.customers_query,
                )?;
                scan.check_query().await?;
                anyhow::Ok(())
            };
            if let Err(e) = checked.await {
                eprintln!("{e:#}");
                return ExitCode::from(1);
            }
            eprintln!(
                "orders.customers_query ran against the order DB and returned usable columns"
            );
        }
    }
    let tags: Vec<String> = settings
        .policy
        .all_tags()
        .iter()
        .map(Tag::to_string)
        .collect();
    eprintln!(
        "tags this policy can write (list them in the Zendesk trigger's nullifying condition): {}",
        tags.join(" ")
    );
    eprintln!("configuration is valid");
    ExitCode::SUCCESS
}
