//! The connection stream actix reads from, handing out at most [`READ_TURN`] bytes per poll.
//!
//! actix's HTTP/1 dispatcher reads until its buffer holds 32 KiB (growing it to 32–64 KiB, and
//! keeping older buffers alive while body chunks still point into them) before it even parses a
//! request's head, and it drains a refused body the same way. A connection whose client has sent
//! a large body thus costs ~100 KiB before the handler can refuse it: 2,000 such connections took
//! ~250 MiB at once. Here a read that returned data is followed by one `Pending` (the task wakes
//! itself at once), so each dispatcher poll sees at most one read: its 8 KiB first buffer never
//! needs to grow, and the bytes in memory per connection stay near what the handler took.
//! Once its [`CloseMark`] is set (see `connection.rs`), the stream reads as ended.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connection::CloseMark;

/// Bytes one poll hands out at most: under actix's first 8 KiB buffer, so it is never grown.
pub const READ_TURN: usize = 7 * 1024;

/// A TCP stream read one turn per poll.
pub struct PacedRead {
    inner: TcpStream,
    /// The last read returned data: the next one yields first.
    yield_next: bool,
    /// Set when the connection's request was refused under overload: read nothing more.
    closed: CloseMark,
}

impl PacedRead {
    pub fn new(inner: TcpStream) -> PacedRead {
        PacedRead {
            inner,
            yield_next: false,
            closed: CloseMark::default(),
        }
    }

    pub fn close_mark(&self) -> CloseMark {
        self.closed.clone()
    }
}

impl AsyncRead for PacedRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed.is_set() {
            // The end of input: actix writes the answer and closes the connection.
            return Poll::Ready(Ok(()));
        }
        if self.yield_next {
            self.yield_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let turn = buf.remaining().min(READ_TURN);
        let mut part = buf.take(turn);
        let before = part.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, &mut part);
        let n = part.filled().len() - before;
        if let Poll::Ready(Ok(())) = poll {
            // SAFETY: `part` borrows `buf`'s unfilled bytes; the first `n` were initialised and
            // filled by the read above.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            self.yield_next = n > 0;
        }
        poll
    }
}

impl AsyncWrite for PacedRead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn each_read_takes_one_turn_and_a_set_mark_reads_as_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        client.write_all(&[7u8; 20 * 1024]).await.expect("write");
        let mut stream = PacedRead::new(server);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while total < 20 * 1024 {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0 && n <= READ_TURN, "read {n} bytes");
            total += n;
        }
        client.write_all(b"more").await.expect("write");
        stream.close_mark().set();
        assert_eq!(stream.read(&mut buf).await.expect("read"), 0);
    }
}
