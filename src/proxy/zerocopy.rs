//! Moving body bytes from one socket to another through a pipe with
//! `splice(2)`: the kernel hands pages from socket to pipe to socket, and
//! the bytes never enter the shim's memory. The fast path uses it for the
//! bulk of large bodies (`docker cp`, `save`, `export`, build contexts),
//! where copying every byte in and out of user space is what a proxy costs
//! on a 2-core host.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The pipe's capacity, when the kernel grants it (`fs.pipe-max-size` is
/// 1 MiB by default); otherwise the default 64 KiB is used.
const PIPE_SIZE: i32 = 1 << 20;

/// Which side of a transfer failed.
#[derive(Debug)]
pub enum TransferError {
    /// Reading from the source: an error, or its end before `n` bytes.
    From(io::Error),
    /// Writing to the destination.
    To(io::Error),
    /// The pipe could not be made.
    Pipe(io::Error),
}

/// A pipe between two sockets. Empty between transfers.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // A larger pipe moves more per call; the default works too.
        let _ = nix::fcntl::fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        Ok(Pipe { read, write })
    }

    /// Moves exactly `n` bytes from `from` to `to`, waiting on either side
    /// as needed. On error the pipe may hold bytes: drop it.
    pub async fn transfer(&mut self, from: &UnixStream, to: &UnixStream, n: u64) -> Result<(), TransferError> {
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        let mut left = n;
        let mut held = 0usize;
        while left > 0 || held > 0 {
            if left > 0 {
                let want = left.min(PIPE_SIZE as u64) as usize;
                let moved = from.try_io(Interest::READABLE, || {
                    splice(from.as_fd(), None, self.write.as_fd(), None, want, flags).map_err(io::Error::from)
                });
                match moved {
                    Ok(0) => {
                        return Err(TransferError::From(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the peer closed in the middle of a body",
                        )))
                    }
                    Ok(moved) => {
                        left -= moved as u64;
                        held += moved;
                    }
                    // The pipe is empty here (it is drained below before
                    // the next fill), so this is the socket with nothing
                    // to read, never a full pipe: try_io may forget the
                    // socket's readiness.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        from.readable().await.map_err(TransferError::From)?;
                        continue;
                    }
                    Err(e) => return Err(TransferError::From(e)),
                }
            }
            while held > 0 {
                let moved = to.try_io(Interest::WRITABLE, || {
                    splice(self.read.as_fd(), None, to.as_fd(), None, held, flags).map_err(io::Error::from)
                });
                match moved {
                    Ok(moved) => held -= moved,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        to.writable().await.map_err(TransferError::To)?;
                    }
                    Err(e) => return Err(TransferError::To(e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn transfer_moves_exactly_n_bytes_and_leaves_the_rest() {
        let (mut writer, source) = UnixStream::pair().unwrap();
        let (destination, mut reader) = UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let n = 2_500_000u64;
        let feed = data.clone();
        let feeder = tokio::spawn(async move {
            writer.write_all(&feed).await.unwrap();
            writer
        });
        let drain = tokio::spawn(async move {
            let mut out = vec![0u8; n as usize];
            reader.read_exact(&mut out).await.unwrap();
            out
        });
        let mut pipe = Pipe::new().unwrap();
        pipe.transfer(&source, &destination, n).await.unwrap();
        assert_eq!(drain.await.unwrap(), data[..n as usize]);
        // What follows the n bytes is still in the source, unread.
        let mut rest = vec![0u8; data.len() - n as usize];
        let mut source = source;
        source.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, data[n as usize..]);
        let _writer = feeder.await.unwrap();
    }

    #[tokio::test]
    async fn a_source_that_ends_early_is_an_error_of_the_source() {
        let (mut writer, source) = UnixStream::pair().unwrap();
        let (destination, _reader) = UnixStream::pair().unwrap();
        writer.write_all(b"short").await.unwrap();
        drop(writer);
        let mut pipe = Pipe::new().unwrap();
        match pipe.transfer(&source, &destination, 100).await {
            Err(TransferError::From(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }
    }
}
