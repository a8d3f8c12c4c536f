//! The binary: parse the command line and hand off to [`ltv_tagger::cli`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    ltv_tagger::cli::run(ltv_tagger::cli::Cli::parse()).await
}
