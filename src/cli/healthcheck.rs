//! `healthcheck`: exit 0 if the service answers on its liveness route, for container HEALTHCHECKs.

use std::process::ExitCode;
use std::time::Duration;

pub(super) async fn healthcheck(url: &str, timeout: Duration) -> ExitCode {
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
