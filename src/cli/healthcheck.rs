//! `healthcheck`: exit 0 if the service answers on its liveness route, for container HEALTHCHECKs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::RawSettings;

/// GETs `url`, or `/livez` on the port `server.bind` names (config file and environment, as
/// `serve` reads them; nothing else in the config needs to be valid).
pub(super) async fn healthcheck(
    url: Option<String>,
    file: Option<&Path>,
    timeout: Duration,
) -> ExitCode {
    let url = match url {
        Some(u) => u,
        None => match livez_url(file) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("healthcheck: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::from(1);
        }
    };
    match client.get(&url).send().await {
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

/// `http://{host}:{port}/livez` for the configured `server.bind`; a wildcard address is reached
/// on loopback.
fn livez_url(file: Option<&Path>) -> Result<String, String> {
    let raw = RawSettings::load(file, "LTV_TAGGER").map_err(|e| e.to_string())?;
    let bind: SocketAddr = raw.server.bind.parse().map_err(|_| {
        format!(
            "server.bind: {:?} is not HOST:PORT (for example \"0.0.0.0:8080\")",
            raw.server.bind
        )
    })?;
    let ip = match bind.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}/livez", SocketAddr::new(ip, bind.port())))
}
