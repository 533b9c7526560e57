//! A stand-in for dockerd in front of the real one, for what dockerd does
//! only now and then: it answers some requests itself (an error, a lie) or
//! holds an answer back, and splices every other connection to dockerd.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::DOCKERD_SOCKET;

/// A socket in front of dockerd that answers the inspect of one container
/// with an error and splices every other connection to dockerd. The shim
/// reads an inspect on a connection of its own, so the first request head
/// on each connection is all it looks at.
pub struct FaultyDockerd {
    pub path: PathBuf,
    /// Refusals still to give, for [`FaultyDockerd::refusing`].
    refusals: Option<Arc<std::sync::atomic::AtomicUsize>>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl FaultyDockerd {
    /// Inspects of `container` get `status` with `body`.
    pub fn start(container: &str, status: u16, body: &'static str) -> FaultyDockerd {
        FaultyDockerd::answering(format!("/containers/{container}/json"), status, body)
    }

    /// `GET`s whose path ends with `target` get `status` with `body`.
    pub fn answering(target: String, status: u16, body: &'static str) -> FaultyDockerd {
        FaultyDockerd::with(Fault::Answer { target, status, body })
    }

    /// Container creates go to dockerd, and dockerd's answer is handed on
    /// `delay` later.
    pub fn delaying_creates(delay: Duration) -> FaultyDockerd {
        FaultyDockerd::with(Fault::DelayCreate(delay))
    }

    /// The first `times` requests `method` whose path ends with `target`
    /// get `status` with `body`; the rest go to dockerd.
    pub fn refusing(
        method: &'static str,
        target: String,
        times: usize,
        status: u16,
        body: &'static str,
    ) -> FaultyDockerd {
        let times = Arc::new(std::sync::atomic::AtomicUsize::new(times));
        let mut faulty = FaultyDockerd::with(Fault::Refuse {
            method,
            target,
            status,
            body,
            times: times.clone(),
        });
        faulty.refusals = Some(times);
        faulty
    }

    /// How many of [`FaultyDockerd::refusing`]'s refusals are still to give.
    pub fn refusals_left(&self) -> usize {
        self.refusals.as_ref().map_or(0, |n| n.load(Ordering::SeqCst))
    }

    fn with(fault: Fault) -> FaultyDockerd {
        let dir = tempfile::Builder::new().prefix("fs-faulty-").tempdir().unwrap();
        let path = dir.path().join("dockerd.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let fault = fault.clone();
                        std::thread::spawn(move || serve_faulty(client, &fault));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyDockerd {
            path,
            refusals: None,
            stop,
            _dir: dir,
        }
    }
}

impl Drop for FaultyDockerd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone)]
enum Fault {
    /// The first `times` requests `METHOD` whose path ends with `target`
    /// get `status` with `body`.
    Refuse {
        method: &'static str,
        target: String,
        status: u16,
        body: &'static str,
        times: Arc<std::sync::atomic::AtomicUsize>,
    },
    Answer {
        target: String,
        status: u16,
        body: &'static str,
    },
    DelayCreate(Duration),
}

/// The `Content-Length` of a message `head`; 0 when it has none.
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|n| n.trim().to_string()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Reads the body of the request whose `head` was read from `stream`.
fn read_body(stream: &mut UnixStream, head: &[u8]) -> Option<Vec<u8>> {
    let mut body = vec![0u8; content_length(head)];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Reads one HTTP message with a `Content-Length` (or none) from `stream`.
fn read_message(stream: &mut UnixStream) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut byte = [0u8; 1];
    while !message.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => message.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&message).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        while !message.ends_with(b"\r\n0\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => message.push(byte[0]),
                _ => return None,
            }
        }
        return Some(message);
    }
    let body = read_body(stream, &message)?;
    message.extend(body);
    Some(message)
}

fn serve_faulty(mut client: UnixStream, fault: &Fault) {
    client.set_nonblocking(false).ok();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    let path = line.split(' ').nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    if let Fault::DelayCreate(delay) = fault {
        if line.starts_with("POST ") && path.ends_with("/containers/create") {
            let Some(body) = read_body(&mut client, &head) else {
                return;
            };
            let Ok(mut upstream) = UnixStream::connect(DOCKERD_SOCKET) else {
                return;
            };
            if upstream.write_all(&head).is_err() || upstream.write_all(&body).is_err() {
                return;
            }
            let Some(answer) = read_message(&mut upstream) else {
                return;
            };
            std::thread::sleep(*delay);
            let _ = client.write_all(&answer);
            return;
        }
    }
    let answers = match fault {
        Fault::Answer { target, status, body } => {
            (line.starts_with("GET ") && path.ends_with(target.as_str())).then_some((*status, *body))
        }
        Fault::Refuse {
            method,
            target,
            status,
            body,
            times,
        } => {
            let matches = line.starts_with(&format!("{method} ")) && path.ends_with(target.as_str());
            let left = matches
                && times
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            left.then_some((*status, *body))
        }
        Fault::DelayCreate(_) => None,
    };
    if let Some((status, body)) = answers {
        if let Fault::Refuse { .. } = fault {
            // The request's body is read, as dockerd would.
            let _ = read_body(&mut client, &head);
        }
        let answer = format!(
            "HTTP/1.1 {status} Faulty\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes());
        return;
    }
    let Ok(mut upstream) = UnixStream::connect(DOCKERD_SOCKET) else {
        return;
    };
    if upstream.write_all(&head).is_err() {
        return;
    }
    let (mut client_read, mut upstream_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}
