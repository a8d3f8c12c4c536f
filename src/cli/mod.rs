//! The command line: `serve`, `migrate`, `check-config`, `explain`, `jobs`, `healthcheck`, `setup`, `demo`.
//!
//! Here: the clap definitions, the dispatch and the helpers every subcommand shares. `serve` and
//! `migrate` are a few lines each and stay in [`run`]; `demo` lives in [`crate::demo`]; the others
//! have a file each.

mod check_config;
mod explain;
mod healthcheck;
mod index_check;
mod jobs;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Settings;
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
    /// Register ltv-tagger with the helpdesk through its API (idempotent: run it again to check)
    Setup {
        #[command(subcommand)]
        target: SetupTarget,
    },
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
        Command::Healthcheck { url, timeout } => healthcheck::healthcheck(&url, timeout).await,
        Command::Demo { keep_serving } => {
            crate::telemetry::init("pretty", "warn");
            report(crate::demo::run(keep_serving).await)
        }
        Command::CheckConfig { query } => check_config::check_config(file, query).await,
        Command::Setup { target } => setup::setup(file, target).await,
        Command::Serve => {
            with_settings(file, |s| async move {
                // The index check, in the background: a warning per table read whole.
                let check = crate::orders::OrderDb::connect_lazy(&s.orders_options())?;
                index_check::warn_at_start(check, s.index_advice());
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
        Command::Explain { email } => with_settings(file, |s| explain::explain(s, email)).await,
        Command::Jobs { action } => with_settings(file, |s| jobs::jobs(s, action)).await,
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
