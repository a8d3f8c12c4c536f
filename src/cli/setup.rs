//! `setup zendesk|gorgias --public-url URL [--secret-out FILE] [--dry-run]`: the command line around `crate::setup`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{RawSettings, Settings};
use crate::helpdesk::{GorgiasClient, ZendeskClient};
use crate::metrics::Metrics;
use crate::setup::{
    setup_gorgias, setup_zendesk, GorgiasSetup, Report, SetupOptions, ZendeskSetup,
};
use crate::state::StateStore;

#[derive(Debug, Subcommand)]
pub enum SetupTarget {
    /// Create or update the Zendesk webhook and trigger (uses [zendesk] API credentials)
    Zendesk(SetupArgs),
    /// Create or update the Gorgias HTTP integration (uses [gorgias] API credentials)
    Gorgias(SetupArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Where the helpdesk reaches ltv-tagger, e.g. https://tagger.acme.com (…/webhooks/zendesk is added)
    #[arg(long)]
    public_url: String,
    /// Write the secret (Zendesk signing secret, or a generated Gorgias token) to this file, mode 0600
    #[arg(long)]
    secret_out: Option<PathBuf>,
    /// Send only reads; print every write it would send, secrets redacted
    #[arg(long)]
    dry_run: bool,
}

/// Stand-ins so settings validate before the secrets exist: setup is what produces them, and it
/// reads no order DB. None of them is used.
const NOT_USED: &str = "not-used-by-setup";

pub(super) async fn setup(file: Option<PathBuf>, target: SetupTarget) -> ExitCode {
    let (helpdesk, args) = match &target {
        SetupTarget::Zendesk(a) => ("zendesk", a),
        SetupTarget::Gorgias(a) => ("gorgias", a),
    };
    let mut raw = match RawSettings::load(file.as_deref(), "LTV_TAGGER") {
        Ok(r) => r,
        Err(e) => return usage(&e.to_string()),
    };
    let zendesk_secret_set = !raw.zendesk.webhook_secret.expose_secret().is_empty()
        || raw.zendesk.webhook_secret_file.is_some();
    let gorgias_token_set = !raw.gorgias.webhook_token.expose_secret().is_empty()
        || raw.gorgias.webhook_token_file.is_some();
    if raw.orders.url.trim().is_empty() && raw.orders.url_file.is_none() {
        raw.orders.url = format!("sqlite://{NOT_USED}.db");
    }
    if !zendesk_secret_set {
        raw.zendesk.webhook_secret = SecretString::from(NOT_USED);
    }
    if !gorgias_token_set {
        raw.gorgias.webhook_token = SecretString::from(generate_token());
    }
    let settings = match raw.validate() {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    let public_url = match SetupOptions::parse_public_url(&args.public_url) {
        Ok(u) => u,
        Err(e) => return usage(&e),
    };
    let opts = SetupOptions {
        public_url,
        secret_out: args.secret_out.clone(),
        dry_run: args.dry_run,
    };
    crate::telemetry::init(&settings.server.log_format, "warn");
    let ran = async {
        // The admin calls count against the account's rate budget, which lives in the state DB.
        let store = StateStore::connect_lazy(&settings.state)?;
        store.migrate().await?;
        let metrics = Metrics::new()?;
        let mut out = std::io::stdout().lock();
        let report = match helpdesk {
            "zendesk" => {
                let Some(z) = &settings.zendesk else {
                    return Ok(Err(missing(&settings, helpdesk)));
                };
                let client =
                    ZendeskClient::new(z, store, metrics, settings.worker.max_retry_after)?;
                let tags = settings.policy.all_tags();
                let setup = ZendeskSetup {
                    client: &client,
                    tags: &tags,
                    configured_secret: zendesk_secret_set.then_some(&z.webhook_secret),
                };
                setup_zendesk(&setup, &opts, &mut out).await
            }
            _ => {
                let Some(g) = &settings.gorgias else {
                    return Ok(Err(missing(&settings, helpdesk)));
                };
                let client =
                    GorgiasClient::new(g, store, metrics, settings.worker.max_retry_after)?;
                let setup = GorgiasSetup {
                    client: &client,
                    webhook_token: &g.webhook_token,
                    generated: !gorgias_token_set,
                };
                setup_gorgias(&setup, &opts, &mut out).await
            }
        };
        anyhow::Ok(Ok(report))
    };
    match ran.await {
        Ok(Ok(Ok(report))) => {
            finish(helpdesk, &opts, &report);
            ExitCode::SUCCESS
        }
        Ok(Ok(Err(e))) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Ok(Err(message)) => usage(&message),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn missing(_settings: &Settings, helpdesk: &str) -> String {
    match helpdesk {
        "zendesk" => "zendesk.subdomain: setup zendesk needs the Zendesk API credentials: [zendesk] subdomain (or api_base_url), email and api_token".into(),
        _ => "gorgias.domain: setup gorgias needs the Gorgias API credentials: [gorgias] domain (or api_base_url), email and api_key".into(),
    }
}

/// 32 random bytes as hex, for a Gorgias webhook token nobody configured.
fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn finish(helpdesk: &str, opts: &SetupOptions, report: &Report) {
    if opts.dry_run {
        println!("dry run: only the reads above were sent; the writes printed above were not");
        for step in &report.steps {
            println!("  {step}");
        }
        return;
    }
    let changed = report.changes().count();
    if changed == 0 {
        println!("{helpdesk}: everything was already set up; nothing changed");
    }
    println!(
        "next: ltv-tagger check-config --query (the order DB and its indexes), then start in shadow mode"
    );
}
