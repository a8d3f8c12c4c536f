//! The socket a request came on, so a refusal under overload can close it at once instead of
//! lingering (reading and discarding the rest of an unread body for `client_disconnect_timeout`).
//!
//! actix lingers after any answer sent before the body was read, which is right for a client
//! that should see its `413`, but each lingering connection holds actix's read buffer (up to
//! 64 KiB) while it drains: 2,000 refused near-maximum bodies held ~250 MiB that way. A request
//! refused because the unverified-body budget is spent gets its answer written, then the socket's
//! read side is shut: actix sees end of input and closes the connection.

use std::any::Any;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::HttpRequest;

/// The connection's socket descriptor, put in the connection's data by [`on_connect`].
#[derive(Clone, Copy, Debug)]
struct PeerSocket(RawFd);

/// `HttpServer::on_connect` hook: remembers each TCP connection's socket.
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    if let Some(stream) = conn.downcast_ref::<TcpStream>() {
        data.insert(PeerSocket(stream.as_raw_fd()));
    }
}

/// Closes the request's connection once its answer is written: what the client still sends is
/// not read (new data is answered with a reset), and actix, seeing the end of input, drops the
/// connection at once instead of lingering. Does nothing for a request without a socket (tests
/// calling handlers directly).
pub fn close_after_answer(req: &HttpRequest) {
    let Some(PeerSocket(fd)) = req.conn_data::<PeerSocket>().copied() else {
        return;
    };
    // SAFETY: the descriptor belongs to the connection this request arrived on. actix's
    // dispatcher owns that socket and polls the handler that calls us; the socket is closed only
    // when the dispatcher is dropped, after the handler's future, so the descriptor is open and
    // still this connection's during this call. The duplicate taken here keeps the socket
    // itself, so the task below never touches a descriptor number reused by another connection.
    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = match socket2::SockRef::from(&socket).try_clone() {
        Ok(dup) => dup,
        Err(e) => {
            tracing::debug!(error = %e, "could not take the refused connection's socket");
            return;
        }
    };
    // On the connection's own (single-threaded) worker: the dispatcher writes the answer in the
    // poll that completes the handler, before this task runs.
    actix_web::rt::spawn(async move {
        tokio::task::yield_now().await;
        let _ = socket.shutdown(std::net::Shutdown::Both);
    });
}
