//! The HTTP server: actix's HTTP/1 service over [`PacedRead`] connections, with the settings of
//! `[server]`. (actix-web's `HttpServer` only serves plain `TcpStream`s, so this is its `listen`
//! with one more step: each accepted stream is wrapped before the dispatcher reads it.)

use std::net::TcpListener;
use std::time::Duration;

use actix_server::Server;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use actix_web::{web, App};

use super::paced_read::PacedRead;
use super::{connection, routes, AppState};

/// What the server needs from `[server]`.
pub struct ServerSettings {
    pub max_connections: usize,
    pub head_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Serves the routes on `listener` (HTTP/1.1 only, as before), until stopped by its handle.
pub fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    s: ServerSettings,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let (head_timeout, grace) = (s.head_timeout, s.shutdown_grace);
    let builder = Server::build()
        .disable_signals()
        .max_concurrent_connections(s.max_connections)
        .shutdown_timeout(grace.as_secs().max(1));
    let shutdown = builder.graceful_shutdown_signal();
    builder
        .listen("ltv-tagger-http", listener, move || {
            let app = App::new()
                .app_data(state.clone())
                .configure(routes)
                .into_factory()
                .map_err(|e| e.error_response());
            let shutdown = shutdown.clone();
            let http = actix_http::HttpServiceBuilder::<PacedRead, _>::default()
                // Idle kept-alive connections close at once when the server stops.
                .graceful_shutdown_signal(move || {
                    let signal = shutdown.clone();
                    async move { signal.notified().await }
                })
                .client_request_timeout(head_timeout)
                .client_disconnect_timeout(Duration::from_secs(2))
                .local_addr(addr)
                .on_connect_ext(connection::on_connect)
                // The routes use neither the host name nor URL generation that this informs.
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|io: TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((PacedRead::new(io), peer))
            })
            .and_then(http)
        })
        .map(|b| b.run())
}
