//! The harness's own tests, without dockerd: the percentiles the benches
//! report, and the raw HTTP/1.1 client that tests and benches share, against
//! a peer on a Unix socket that writes exactly the bytes a case needs.

mod common;
#[path = "../examples/common/stats.rs"]
mod stats;

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::RawConnection;
use stats::{median, percentile};

#[test]
fn percentile_is_the_nearest_rank() {
    let values: Vec<f64> = (1..=10).rev().map(f64::from).collect();
    assert_eq!(percentile(&values, 0.0), 1.0);
    assert_eq!(percentile(&values, 0.1), 1.0);
    assert_eq!(percentile(&values, 0.5), 5.0);
    assert_eq!(percentile(&values, 0.55), 6.0);
    assert_eq!(percentile(&values, 0.99), 10.0);
    assert_eq!(percentile(&values, 1.0), 10.0);
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert!(percentile(&[], 0.5).is_nan());
}

#[test]
fn percentile_survives_nan() {
    let values = [2.0, f64::NAN, 1.0, 3.0, -f64::NAN];
    // A NaN sorts past the infinities, on the side of its sign: the middle
    // is a number, and nothing panics.
    assert_eq!(median(&values), 2.0);
    assert!(percentile(&values, 1.0).is_nan());
    assert!(percentile(&values, 0.0).is_nan());
}

/// A connection to a peer that writes `pieces` one by one, pausing between
/// them so that each arrives in a read of its own, then closes.
fn peer_writing(pieces: &'static [&'static [u8]]) -> (RawConnection, thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("peer.sock");
    let listener = UnixListener::bind(&path).expect("bind the peer");
    let connection = RawConnection::connect(&path);
    let peer = thread::spawn(move || {
        let _dir = dir;
        let (mut stream, _) = listener.accept().expect("accept");
        for piece in pieces {
            stream.write_all(piece).expect("peer write");
            thread::sleep(Duration::from_millis(50));
        }
    });
    (connection, peer)
}

#[test]
fn a_chunked_body_split_anywhere_reads_whole() {
    let (mut connection, peer) = peer_writing(&[
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r",
        b"\nhel",
        b"lo\r\n6;ext=1\r\n, worl\r\n1\r\nd\r\n0\r\nX-Trailer: a\r\n",
        b"\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ]);
    let response = connection.read_response(false);
    assert_eq!((response.status, response.body_text().as_str()), (200, "hello, world"));
    // The trailers were consumed, and only them: the next response is next.
    assert_eq!(connection.read_response(false).status, 204);
    peer.join().unwrap();
}

#[test]
fn a_chunk_read_that_times_out_loses_nothing() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("peer.sock");
    let listener = UnixListener::bind(&path).expect("bind the peer");
    let mut connection = RawConnection::connect(&path);
    let (timed_out, on_timeout) = mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfir")
            .expect("peer write");
        // The rest only once the client's read has timed out mid-chunk.
        on_timeout.recv().expect("the client timed out");
        stream.write_all(b"st\r\n0\r\n\r\n").expect("peer write");
    });
    assert_eq!(connection.read_head().status, 200);
    connection.set_read_timeout(Duration::from_millis(50)).unwrap();
    let error = connection
        .try_read_chunk()
        .expect_err("half a chunk was read as a chunk");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );
    timed_out.send(()).unwrap();
    connection.set_read_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(connection.try_read_chunk().unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(connection.try_read_chunk().unwrap(), None);
    peer.join().unwrap();
}

#[test]
fn a_write_to_a_closed_peer_says_closed_and_its_answer_stays_readable() {
    let (mut connection, peer) = peer_writing(&[b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"]);
    peer.join().unwrap();
    // The peer answered and closed, as the shim does on a head it refuses:
    // the next write gets EPIPE or ECONNRESET, which is "closed", not a
    // failure.
    assert!(
        !connection.send_unless_closed(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"),
        "a write to a closed peer succeeded"
    );
    assert_eq!(connection.read_response(false).status, 400);
}
