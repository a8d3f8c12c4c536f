//! An HTTP forwarder in front of the fake helpdesk that spoils chosen answers: the next answers to
//! a path prefix come back 2xx but empty, not JSON, cut off, stalled, or hundreds of MB long.
//! Everything else is forwarded unchanged, so the fake still checks auth, verbs and bodies.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream;

/// How one answer is spoiled.
#[derive(Debug, Clone, Copy)]
pub enum Spoil {
    /// 200 with no body.
    Empty,
    /// 200 with an HTML page (a proxy's).
    NotJson,
    /// 200, some JSON, then the connection breaks.
    CutOff,
    /// 200, some JSON, then nothing for this long.
    Stall(Duration),
    /// `status` with a body of `bytes` bytes, streamed (counted in [`ManglingProxy::bytes_sent`]).
    Huge { status: u16, bytes: u64 },
}

#[derive(Default)]
struct State {
    upstream: Mutex<String>,
    plan: Mutex<VecDeque<(String, Spoil)>>,
    sent: AtomicU64,
    spoiled: AtomicU64,
}

pub struct ManglingProxy {
    pub base_url: String,
    state: Arc<State>,
    server: ServerHandle,
}

impl ManglingProxy {
    /// Forwards to nothing until [`ManglingProxy::set_upstream`].
    pub async fn start() -> ManglingProxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let st = state.clone();
        let http = reqwest::Client::new();
        let server = HttpServer::new(move || {
            let (st, http) = (st.clone(), http.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: Bytes| {
                let (st, http) = (st.clone(), http.clone());
                async move { answer(&st, &http, req, body).await }
            }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        ManglingProxy {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
            server: handle,
        }
    }

    pub fn set_upstream(&self, url: &str) {
        *self.state.upstream.lock().expect("upstream") = url.to_string();
    }

    /// The next call whose path starts with `prefix` is answered `spoil` (in order of calls).
    pub fn spoil_next(&self, prefix: &str, spoil: Spoil) {
        let mut plan = self.state.plan.lock().expect("plan");
        plan.push_back((prefix.to_string(), spoil));
    }

    /// Spoiled answers given so far.
    pub fn spoiled(&self) -> u64 {
        self.state.spoiled.load(Ordering::SeqCst)
    }

    /// Bytes of [`Spoil::Huge`] bodies the client actually pulled.
    pub fn bytes_sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }
}

impl Drop for ManglingProxy {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

async fn answer(
    st: &Arc<State>,
    http: &reqwest::Client,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let spoil = {
        let mut plan = st.plan.lock().expect("plan");
        let at = plan.iter().position(|(p, _)| req.path().starts_with(p));
        at.and_then(|i| plan.remove(i)).map(|(_, s)| s)
    };
    if let Some(spoil) = spoil {
        // Still only for authenticated callers, as the real API.
        if req.headers().get("authorization").is_none() {
            return HttpResponse::Unauthorized().finish();
        }
        st.spoiled.fetch_add(1, Ordering::SeqCst);
        return spoiled(st.clone(), spoil);
    }
    let upstream = st.upstream.lock().expect("upstream").clone();
    let url = format!("{upstream}{}", req.uri());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
    let mut out = http.request(method, url).body(body.to_vec());
    for (k, v) in req.headers() {
        if k != "host" && k != "content-length" {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let res = match out.send().await {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let mut back =
        HttpResponse::build(StatusCode::from_u16(res.status().as_u16()).expect("status"));
    for (k, v) in res.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            back.insert_header((k.as_str(), v.as_bytes()));
        }
    }
    back.body(res.bytes().await.unwrap_or_default())
}

fn spoiled(st: Arc<State>, spoil: Spoil) -> HttpResponse {
    let json = || HttpResponse::Ok().content_type("application/json").take();
    match spoil {
        Spoil::Empty => json().finish(),
        Spoil::NotJson => HttpResponse::Ok()
            .content_type("text/html")
            .body("<html><body>502 upstream hiccup</body></html>"),
        Spoil::CutOff => {
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"user\":{\"id\":1,")),
                Err(std::io::Error::other("connection cut")),
            ];
            json().streaming(stream::iter(parts))
        }
        Spoil::Stall(d) => {
            let s = stream::unfold(0u8, move |n| async move {
                match n {
                    0 => Some((
                        Ok::<_, std::io::Error>(Bytes::from_static(b"{\"user\":")),
                        1,
                    )),
                    1 => {
                        tokio::time::sleep(d).await;
                        Some((Ok(Bytes::from_static(b"{}}")), 2))
                    }
                    _ => None,
                }
            });
            json().streaming(s)
        }
        Spoil::Huge { status, bytes } => {
            const CHUNK: usize = 64 * 1024;
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let s = stream::unfold(0u64, move |done| {
                let (st, chunk) = (st.clone(), chunk.clone());
                async move {
                    if done >= bytes {
                        return None;
                    }
                    st.sent.fetch_add(CHUNK as u64, Ordering::SeqCst);
                    Some((Ok::<_, std::io::Error>(chunk), done + CHUNK as u64))
                }
            });
            HttpResponse::build(StatusCode::from_u16(status).expect("status"))
                .content_type("text/plain")
                .streaming(s)
        }
    }
}
