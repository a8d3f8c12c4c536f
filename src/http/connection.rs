//! Closing a connection refused under overload at once, instead of lingering (reading and
//! discarding the rest of an unread body for `client_disconnect_timeout`).
//!
//! actix lingers after any answer sent before the body was read, which is right for a client
//! that should see its `413`; but under a flood every lingering connection holds its buffers
//! while it drains what the client had queued. A request refused because the unverified-body
//! budget is spent marks its connection: its stream ([`PacedRead`]) then reports the end of
//! input, so actix writes the answer and closes the connection without reading another byte.

use std::cell::Cell;
use std::rc::Rc;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

use super::paced_read::PacedRead;

/// The mark a connection's stream reads (one per connection, on its own worker thread).
#[derive(Clone, Debug, Default)]
pub struct CloseMark(Rc<Cell<bool>>);

impl CloseMark {
    pub fn is_set(&self) -> bool {
        self.0.get()
    }

    pub fn set(&self) {
        self.0.set(true);
    }
}

/// The server's on-connect hook: gives the request handlers the connection's mark.
pub fn on_connect(stream: &PacedRead, data: &mut Extensions) {
    data.insert(stream.close_mark());
}

/// Closes the request's connection once its answer is written: nothing more is read from it.
/// Does nothing for a request without such a connection (tests calling handlers directly).
pub fn close_after_answer(req: &HttpRequest) {
    if let Some(mark) = req.conn_data::<CloseMark>() {
        mark.set();
    }
}
