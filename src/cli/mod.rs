//! The command line: `serve`, `migrate`, `check-config`, `explain`, `thresholds`, `audit`, `jobs`,
//! `healthcheck`, `setup`, `demo`.
//!
//! Here: the clap definitions, the dispatch and the helpers every subcommand shares. `serve` and
//! `migrate` are a few lines each and stay in [`run`]; `demo` lives in [`crate::demo`]; the others
//! have a file each.

mod audit;
mod backfill;
mod check_config;
mod explain;
mod healthcheck;
mod index_check;
mod jobs;
mod setup;
mod thresholds;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::{RawSettings, Settings};
use crate::state::StateStore;

pub use jobs::JobsAction;
pub use setup::{SetupArgs, SetupTarget};

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
    /// Show what the service would decide for customers (LTV, disputes, tags) and why, writing
    /// nothing; needs only the order DB
    Explain {
        #[arg(required = true)]
        emails: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Count every customer into the tags the policy gives them, show the LTV distribution and
    /// recent tickets, compare a candidate policy, plot it (needs orders.customers_query)
    Thresholds {
        /// Another config file whose [policy] is shown beside the current one
        #[arg(long)]
        candidate: Option<PathBuf>,
        /// Recent tickets: the audit log's decisions of this last period
        #[arg(long, default_value = "30days", value_parser = humantime::parse_duration)]
        since: Duration,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write a picture of the LTV distribution here (.svg or .png)
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Past decisions from the audit log, newest last
    Audit {
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Only decisions of this last period (e.g. 2h, 7days)
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Inspect and retry jobs (dead letters included)
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Exit 0 if the service answers on its liveness route (for container HEALTHCHECKs)
    Healthcheck {
        /// Default: `/livez` on the port `server.bind` names (loopback for a wildcard address)
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Register ltv-tagger with the helpdesk through its API (idempotent: run it again to check)
    Setup {
        #[command(subcommand)]
        target: SetupTarget,
    },
    /// Queue the tickets that are already open (listed through the helpdesk's API) within
    /// `backfill.budget_share` of its rate budget; resumes where a killed run stopped
    Backfill(backfill::BackfillCli),
    /// Run the whole flow against a sample order DB and a fake Zendesk: no account needed
    Demo {
        /// Keep serving after the demo so you can send your own webhooks with curl
        #[arg(long)]
        keep_serving: bool,
    },
}

/// Exit codes: 0 success, 1 failure at run time, 2 invalid configuration.
pub async fn run(cli: Cli) -> ExitCode {
    let file = cli.config;
    match cli.command {
        Command::Healthcheck { url, timeout } => {
            healthcheck::healthcheck(url, file.as_deref(), timeout).await
        }
        Command::Demo { keep_serving } => {
            crate::telemetry::init("pretty", "warn");
            report(crate::demo::run(keep_serving).await)
        }
        Command::CheckConfig { query } => check_config::check_config(file, query).await,
        Command::Setup { target } => setup::setup(file, target).await,
        Command::Serve => {
            let reload_from = file.clone();
            with_settings(file, |s| async move {
                // The index check, in the background: a warning per table read whole.
                let check = crate::orders::OrderDb::connect_lazy(&s.orders_options())?;
                index_check::warn_at_start(check, s.index_advice());
                let running = RawSettings::load(reload_from.as_deref(), "LTV_TAGGER")?;
                let app = Application::build(s)
                    .await?
                    .with_reload(reload_from, running)?;
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
        Command::Explain { emails, format } => {
            with_offline_settings(file, |s| explain::explain(s, emails, format)).await
        }
        Command::Thresholds {
            candidate,
            since,
            format,
            plot,
        } => {
            let args = thresholds::Args {
                candidate,
                since,
                format,
                plot,
            };
            with_offline_settings(file, |s| thresholds::thresholds(s, args)).await
        }
        Command::Audit {
            ticket,
            email,
            since,
            limit,
            format,
        } => {
            let args = audit::Args {
                ticket,
                email,
                since,
                limit,
                format,
            };
            with_offline_settings(file, |s| audit::audit(s, args)).await
        }
        Command::Jobs { action } => with_settings(file, |s| jobs::jobs(s, action)).await,
        Command::Backfill(args) => with_settings(file, |s| backfill::backfill(s, args)).await,
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

/// `--format` of the read-only commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Like [`with_settings`], for the commands that never talk to a helpdesk: the `[zendesk]` and
/// `[gorgias]` sections are not checked, so no helpdesk secret is needed.
async fn with_offline_settings<F, Fut>(file: Option<PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings =
        match RawSettings::load(file.as_deref(), "LTV_TAGGER").and_then(|r| r.validate_offline()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
    crate::telemetry::init(&settings.server.log_format, &settings.server.log_level);
    report(f(settings).await)
}
