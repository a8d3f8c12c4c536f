//! The command line: `serve`, `migrate`, `check-config`, `explain`, `jobs`, `healthcheck`, `demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{RawSettings, Settings};
use crate::domain::{CustomerEmail, Tag};
use crate::orders::OrderDb;
use crate::policy::CustomerFacts;
use crate::startup::Application;
use crate::store::{now_ms, StateStore};

#[derive(Debug, Parser)]
#[command(
    name = "ltv-tagger",
    version,
    about = "Tags helpdesk tickets with VIP / dispute tags from your order database"
)]
pub struct Cli {
    /// TOML file layered over the built-in defaults (env LTV_TAGGER__SECTION__KEY overrides both)
    #[arg(long, short = 'c', env = "LTV_TAGGER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the workers
    Serve,
    /// Apply the state DB migrations and exit
    Migrate,
    /// Validate the configuration and print it with secrets redacted
    CheckConfig {
        /// Also connect to the order DB and run the query once for a dummy address
        #[arg(long)]
        query: bool,
    },
    /// Show what the service would decide for a customer (LTV, disputes, tags), writing nothing
    Explain { email: String },
    /// Inspect and retry jobs (dead letters included)
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Exit 0 if the service answers on its liveness route (for container HEALTHCHECKs)
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/livez")]
        url: String,
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Run the whole flow against a sample order DB and a fake Zendesk: no account needed
    Demo {
        /// Keep serving after the demo so you can send your own webhooks with curl
        #[arg(long)]
        keep_serving: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// List waiting, running and dead jobs with their last error
    List {
        /// Only dead-lettered jobs
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue a dead-lettered job (or all of them) again
    Retry {
        #[arg(conflicts_with = "all_dead", required_unless_present = "all_dead")]
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
}

/// Exit codes: 0 success, 1 failure at run time, 2 invalid configuration.
pub async fn run(cli: Cli) -> ExitCode {
    let file = cli.config;
    match cli.command {
        Command::Healthcheck { url, timeout } => healthcheck(&url, timeout).await,
        Command::Demo { keep_serving } => {
            crate::telemetry::init("pretty", "warn");
            report(crate::demo::run(keep_serving).await)
        }
        Command::CheckConfig { query } => check_config(file, query).await,
        Command::Serve => {
            with_settings(file, |s| async move {
                let app = Application::build(s).await?;
                app.run_until_stopped().await
            })
            .await
        }
        Command::Migrate => {
            with_settings(file, |s| async move {
                let store = StateStore::connect_lazy(&s.state)?;
                store.migrate().await?;
                println!("state DB migrated");
                Ok(())
            })
            .await
        }
        Command::Explain { email } => with_settings(file, |s| explain(s, email)).await,
        Command::Jobs { action } => with_settings(file, |s| jobs(s, action)).await,
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn with_settings<F, Fut>(file: Option<PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = match Settings::load(file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings.server.log_format, &settings.server.log_level);
    report(f(settings).await)
}

async fn check_config(file: Option<PathBuf>, query: bool) -> ExitCode {
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

async fn explain(s: Settings, email: String) -> anyhow::Result<()> {
    let email = CustomerEmail::parse(&email).map_err(anyhow::Error::msg)?;
    let db = OrderDb::connect_lazy(&s.orders_options())?;
    match db.lookup(email.as_str()).await? {
        None => println!("{email}: unknown customer (the query returned no row): no tags"),
        Some(stats) => {
            let tags = s.policy.decide(&CustomerFacts {
                ltv: stats.ltv,
                disputes: stats.disputes,
            });
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

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

async fn jobs(s: Settings, action: JobsAction) -> anyhow::Result<()> {
    let store = StateStore::connect_lazy(&s.state)?;
    store
        .check_ready()
        .await
        .map_err(|e| anyhow::anyhow!("state DB: {e}"))?;
    match action {
        JobsAction::List { dead, limit } => {
            let rows = store.list_jobs(dead, limit).await?;
            if rows.is_empty() {
                println!(
                    "no {}jobs",
                    if dead {
                        "dead "
                    } else {
                        "waiting, running or dead "
                    }
                );
                return Ok(());
            }
            println!(
                "{:>8}  {:<8} {:>12}  {:<8} {:>8}  {:<19}  last error",
                "id", "helpdesk", "ticket", "state", "attempts", "next run / updated"
            );
            for r in rows {
                let at = if r.state == "queued" {
                    r.run_at
                } else {
                    r.updated_at
                };
                println!(
                    "{:>8}  {:<8} {:>12}  {:<8} {:>8}  {:<19}  {}",
                    r.id,
                    r.source,
                    r.ticket_id,
                    r.state,
                    r.attempts,
                    when(at),
                    r.last_error.unwrap_or_default()
                );
            }
        }
        JobsAction::Retry { id, all_dead } => {
            let ids = match id {
                Some(id) if !all_dead => vec![id],
                _ => store.dead_job_ids().await?,
            };
            let mut queued = 0;
            for id in &ids {
                if store.retry_dead(*id, now_ms()).await? {
                    queued += 1;
                } else {
                    eprintln!("job {id} is not dead-lettered: left as it is");
                }
            }
            println!("{queued} job(s) queued again");
            if queued == 0 && !ids.is_empty() {
                anyhow::bail!("nothing was queued");
            }
        }
    }
    Ok(())
}

async fn healthcheck(url: &str, timeout: Duration) -> ExitCode {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::from(1);
        }
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("healthcheck: {url} answered {}", r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {}", e.without_url());
            ExitCode::from(1)
        }
    }
}
