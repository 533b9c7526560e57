//! The fast path's sockets and buffers.
//!
//! A [`Socket`] is registered with the reactor for reading only. tokio's
//! `UnixStream` also asks for `EPOLLOUT`, and with edge-triggered epoll that
//! edge fires each time the peer reads what was written to it: dockerd
//! reading a request woke the shim once per request for nothing (seen with
//! `strace`: three `epoll_wait`s per `/_ping` instead of two). Writes here go
//! straight to the socket; only a write that would block registers for
//! writability, and that registration is dropped when the exchange ends
//! ([`Socket::settle`]).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixStream;

pub struct Socket {
    reader: AsyncFd<StdUnixStream>,
    /// A duplicate descriptor registered for writability, while writes
    /// block.
    writer: Option<AsyncFd<StdUnixStream>>,
}

impl Socket {
    pub fn new(stream: UnixStream) -> io::Result<Socket> {
        let stream = stream.into_std()?;
        Ok(Socket {
            reader: register(stream, Interest::READABLE)?,
            writer: None,
        })
    }

    /// Back to a tokio stream, for hyper.
    pub fn into_tokio(self) -> io::Result<UnixStream> {
        drop(self.writer);
        UnixStream::from_std(self.reader.into_inner())
    }

    fn stream(&self) -> &StdUnixStream {
        self.reader.get_ref()
    }

    /// Reads what is there into `buffer`, at most `want` bytes, waiting for
    /// something; 0 at EOF. The buffer grows only once there is something
    /// to read: an idle connection holds no buffer.
    pub async fn read_into(&self, buffer: &mut Buffer, want: usize) -> io::Result<usize> {
        loop {
            let mut ready = self.reader.readable().await?;
            let spare = buffer.spare(want);
            let limit = want.min(spare.len());
            if let Ok(result) = ready.try_io(|socket| socket.get_ref().read(&mut spare[..limit])) {
                if let Ok(n) = result {
                    buffer.filled(n);
                    // A short read from a stream socket emptied its queue
                    // (as tokio's own streams assume): the next read waits
                    // for the next epoll event instead of failing first.
                    if n > 0 && n < limit {
                        ready.clear_ready();
                    }
                }
                return result;
            }
        }
    }

    /// Whether a connection kept between requests is still usable: the
    /// peer has not closed it and has sent nothing unasked. Free when
    /// nothing has happened on it since it was last read empty.
    pub fn idle_and_open(&self) -> bool {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match self.reader.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(mut ready)) => {
                let mut byte = [0u8; 1];
                // `Err`: it would block, which is what an idle connection does.
                ready.try_io(|socket| socket.get_ref().read(&mut byte)).is_err()
            }
        }
    }

    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.stream().write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until a write may make progress.
    async fn writable(&mut self) -> io::Result<()> {
        if self.writer.is_none() {
            let duplicate = self.stream().try_clone()?;
            self.writer = Some(register(duplicate, Interest::WRITABLE)?);
        }
        let writer = self.writer.as_ref().expect("set above");
        let mut ready = writer.writable().await?;
        // The next write finds out whether there is room; forget this edge.
        ready.clear_ready();
        Ok(())
    }

    /// Drops the writability registration, if a write made one.
    pub fn settle(&mut self) {
        self.writer = None;
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream().shutdown(Shutdown::Write);
    }
}

/// Registers `stream` with the reactor for `interest` only.
///
/// tokio 1.54 deprecated this safe constructor in favour of an `unsafe` one
/// whose condition is that the descriptor stays open and the same while
/// registered. A `UnixStream` owns its descriptor and always returns that
/// one, so the condition holds, and the crate keeps `forbid(unsafe_code)`.
#[allow(deprecated)]
fn register(stream: StdUnixStream, interest: Interest) -> io::Result<AsyncFd<StdUnixStream>> {
    AsyncFd::with_interest(stream, interest)
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream().as_fd()
    }
}

/// A byte buffer that is read into and consumed from the front. Memory is
/// zeroed once, when the buffer grows, not for every read.
#[derive(Default)]
pub struct Buffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Forgets the first `n` bytes.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room for at least `want` more bytes after the data.
    pub fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.data.len() - self.end < want {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < want {
                self.data.resize(self.end + want, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes after the data as read.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Gives back memory above `keep` bytes when the buffer is empty: an
    /// idle keep-alive connection holds little.
    pub fn shrink_if_empty(&mut self, keep: usize) {
        if self.is_empty() && self.data.len() > keep {
            self.data = Vec::new();
        }
    }

    pub fn into_bytes_mut(self) -> BytesMut {
        BytesMut::from(self.as_slice())
    }
}

/// Reads from `socket` into `buffer`, at most `want` bytes.
pub async fn read_into(socket: &Socket, buffer: &mut Buffer, want: usize) -> io::Result<usize> {
    socket.read_into(buffer, want).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_reuses_its_memory_and_keeps_its_bytes_in_order() {
        let mut buffer = Buffer::default();
        buffer.spare(8)[..5].copy_from_slice(b"hello");
        buffer.filled(5);
        buffer.consume(2);
        assert_eq!(buffer.as_slice(), b"llo");
        // Growing moves the data to the front first.
        let spare = buffer.spare(10);
        assert!(spare.len() >= 10);
        spare[..3].copy_from_slice(b"!!!");
        buffer.filled(3);
        assert_eq!(buffer.as_slice(), b"llo!!!");
        buffer.consume(6);
        assert!(buffer.is_empty());
        buffer.shrink_if_empty(4);
        assert_eq!(buffer.spare(1).len(), 1);
    }

    #[tokio::test]
    async fn socket_reads_and_writes_both_ways() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, b) = (Socket::new(a).unwrap(), Socket::new(b).unwrap());
        // More than a socket buffer holds: the writer has to wait.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&data).await.unwrap();
            a.settle();
            a.shutdown_write();
            a
        });
        let mut buffer = Buffer::default();
        while read_into(&b, &mut buffer, 64 * 1024).await.unwrap() > 0 {}
        assert_eq!(buffer.as_slice(), &expected[..]);
        let _a = writer.await.unwrap();
    }
}
