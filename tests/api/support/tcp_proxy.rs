//! A TCP proxy that lets a test take a database "down" and bring it "back".
//!
//! While up it forwards bytes both ways. [`TcpProxy::set_down`]`(true)` shuts every proxied
//! connection down before it returns (both the client's and the upstream's socket), and until the
//! proxy is up again it accepts new connections and closes them straight away, so clients see
//! connection errors at once instead of hanging. Dropping the proxy stops it and closes its
//! connections.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept_task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    down: bool,
    next_id: u64,
    /// Duplicated handles of every open connection's sockets, so `set_down` can shut them down
    /// synchronously, whatever their tasks are doing.
    connections: HashMap<u64, Vec<std::net::TcpStream>>,
}

impl State {
    fn close_all(&mut self) {
        for (_, sockets) in self.connections.drain() {
            for socket in sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TcpProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let accept_task = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&state)));
        Ok(TcpProxy {
            addr,
            state,
            accept_task,
        })
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `true`: shut every proxied connection down now and refuse (accept, then close) new ones.
    /// `false`: forward new connections again.
    pub fn set_down(&self, down: bool) {
        let mut state = lock(&self.state);
        state.down = down;
        if down {
            state.close_all();
        }
    }

    pub fn is_down(&self) -> bool {
        lock(&self.state).down
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        let mut state = lock(&self.state);
        state.down = true;
        state.close_all();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors, or a connection reset before accept: try again soon.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Refused (dropped, so closed) while down.
        if let Some((client, id)) = register(&state, client, None) {
            tokio::spawn(forward(client, id, upstream, Arc::clone(&state)));
        }
    }
}

/// Records a duplicate handle of `socket` under connection `id` (a new id when `None`). Gives the
/// socket back unless the proxy is down or the connection was shut down meanwhile.
fn register(state: &Mutex<State>, socket: TcpStream, id: Option<u64>) -> Option<(TcpStream, u64)> {
    let socket = socket.into_std().ok()?;
    let duplicate = socket.try_clone().ok()?;
    let socket = TcpStream::from_std(socket).ok()?;
    let mut state = lock(state);
    let id = match id {
        None if state.down => return None,
        None => {
            let id = state.next_id;
            state.next_id += 1;
            state.connections.insert(id, Vec::new());
            id
        }
        Some(id) => id,
    };
    state.connections.get_mut(&id)?.push(duplicate);
    Some((socket, id))
}

async fn forward(mut client: TcpStream, id: u64, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    if let Ok(server) = TcpStream::connect(upstream).await {
        if let Some((mut server, _)) = register(&state, server, Some(id)) {
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            // Ends on EOF or error from either side, including the shutdowns of `set_down`.
            let _ = copy_bidirectional(&mut client, &mut server).await;
        }
    }
    lock(&state).connections.remove(&id);
    // The sockets are dropped here, which closes them.
}
