use super::*;

fn simple(request: &[u8]) -> (String, String, usize, RequestBody, bool) {
    match parse_request(request) {
        RequestHead::Simple {
            method,
            target,
            head_len,
            body,
            close,
        } => (method.to_string(), target.to_string(), head_len, body, close),
        other => panic!("{:?} → {other:?}", String::from_utf8_lossy(request)),
    }
}

#[test]
fn plain_requests_take_the_fast_path() {
    let ping = b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: Docker-Client/28.2.2\r\n\r\n";
    assert_eq!(
        simple(ping),
        (
            "HEAD".into(),
            "/_ping".into(),
            ping.len(),
            RequestBody::Length(0),
            false
        )
    );

    let list =
        b"GET /v1.41/containers/json?all=1&filters=%7B%7D HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\nNEXT";
    let (method, target, head_len, body, close) = simple(list);
    assert_eq!(
        (method.as_str(), target.as_str()),
        ("GET", "/v1.41/containers/json?all=1&filters=%7B%7D")
    );
    assert_eq!((head_len, body, close), (list.len() - 4, RequestBody::Length(0), true));

    let post = b"POST /v1.41/networks/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n{\"Name\":\"n\"}";
    let (_, _, head_len, body, close) = simple(post);
    assert_eq!(
        (head_len + 12, body, close),
        (post.len(), RequestBody::Length(12), false)
    );

    // `docker cp` into a container: a chunked body of any size.
    let put = b"PUT /v1.41/containers/c/archive?path=%2Ftmp HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(simple(put).3, RequestBody::Chunked);
    let big = b"POST /v1.41/images/load HTTP/1.1\r\nHost: docker\r\nContent-Length: 1073741824\r\n\r\n";
    assert_eq!(simple(big).3, RequestBody::Length(1 << 30));
}

#[test]
fn a_head_in_pieces_is_partial_until_complete() {
    let request = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";
    for cut in 0..request.len() {
        assert_eq!(parse_request(&request[..cut]), RequestHead::Partial, "cut at {cut}");
    }
    assert!(matches!(parse_request(request), RequestHead::Simple { .. }));
}

/// Every head whose framing Go could read differently from the fast path,
/// or that needs hyper, leaves the fast path.
#[test]
fn ambiguous_or_special_heads_go_to_hyper() {
    let cases: &[&[u8]] = &[
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\ntransfer-encoding: identity\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: \r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /_ping HTTP/1.1\nHost: d\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nX: a\rb\r\n\r\n",
        b"\r\nGET /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n",
        b"GET http://docker/_ping HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /_ping#x HTTP/1.1\r\nHost: d\r\n\r\n",
        b"POST /exec/x/start HTTP/1.1\r\nHost: d\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: keep-alive, x-hop\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost : d\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ];
    for case in cases {
        assert!(
            matches!(parse_request(case), RequestHead::Complex(_)),
            "{:?} → {:?}",
            String::from_utf8_lossy(case),
            parse_request(case)
        );
    }
}

#[test]
fn a_long_head_goes_to_hyper_before_it_is_complete() {
    let mut request = b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
    assert!(matches!(parse_request(&request), RequestHead::Complex(_)));
}

fn response(bytes: &[u8], head_request: bool) -> ResponseHead {
    parse_response(bytes, head_request).unwrap().unwrap()
}

#[test]
fn responses_are_framed_as_http_1_1_says() {
    let ping = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK";
    let head = response(ping, false);
    assert_eq!((head.head_len, head.status), (ping.len() - 2, 200));
    assert_eq!((head.framing, head.close), (Framing::Length(2), false));
    // HEAD, 204 and 304 have no body whatever their headers say.
    assert_eq!(response(ping, true).framing, Framing::Empty);
    let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n";
    assert_eq!(response(no_content, false).framing, Framing::Empty);
    assert_eq!(
        response(b"HTTP/1.1 304 Not Modified\r\n\r\n", false).framing,
        Framing::Empty
    );
    let events = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(response(events, false).framing, Framing::Chunked);
    // Transfer-Encoding wins over Content-Length.
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(response(both, false).framing, Framing::Chunked);
    let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n";
    let head = response(raw, false);
    assert_eq!((head.framing, head.close), (Framing::UntilClose, true));
    let closing = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let head = response(closing, false);
    assert_eq!((head.framing, head.close), (Framing::Empty, true));
    assert!(response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).close);
    assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-", false), Ok(None));
}

#[test]
fn conflicting_or_odd_response_lengths_are_errors() {
    assert!(parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        false
    )
    .is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).is_err());
    assert!(parse_response(b"NOT HTTP\r\n\r\n", false).is_err());
    let same_twice = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nOK";
    assert_eq!(response(same_twice, false).framing, Framing::Length(2));
}

const CHUNKED: &[u8] = b"5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";

#[test]
fn the_end_of_a_chunked_body_is_found_in_one_piece_or_byte_by_byte() {
    let mut with_next = CHUNKED.to_vec();
    with_next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let mut end = ChunkedEnd::default();
    assert_eq!(end.advance(&with_next), Ok((CHUNKED.len(), true)));

    let mut end = ChunkedEnd::default();
    for (i, byte) in CHUNKED.iter().enumerate() {
        let (taken, done) = end.advance(std::slice::from_ref(byte)).unwrap();
        assert_eq!(taken, 1, "byte {i}");
        assert_eq!(done, i == CHUNKED.len() - 1, "byte {i}");
    }
    let mut end = ChunkedEnd::default();
    assert_eq!(end.advance(b"0\r\n\r\n"), Ok((5, true)));
    // A large chunk split across reads.
    let mut end = ChunkedEnd::default();
    assert_eq!(end.advance(b"10000\r\n"), Ok((7, false)));
    assert_eq!(end.advance(&[0u8; 40000]), Ok((40000, false)));
    assert_eq!(end.advance(&[0u8; 25536]), Ok((25536, false)));
    assert_eq!(end.advance(b"\r\n0\r\n\r\n"), Ok((7, true)));
}

#[test]
fn malformed_chunks_are_errors() {
    for bad in [
        &b"z\r\n"[..],
        b"5\r\nhelloXX",
        b"5\nhello\r\n",
        b"\r\n",
        b"fffffffffffffffff\r\n",
        b"0\r\nX: 1\n\r\n",
        b"5 \r\nhello\r\n",
        b"5 ;x\r\nhello\r\n",
        b"5\r\r\nhello\r\n",
    ] {
        assert!(
            ChunkedEnd::default().advance(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn length_bodies_take_exactly_their_length() {
    let mut body = BodyLeft::Length(5);
    assert_eq!(body.take(b"abc"), Ok((3, false)));
    assert_eq!(body.take(b"deNEXT"), Ok((2, true)));
}

#[test]
fn error_responses_are_docker_style() {
    let bytes = error_response(502, "dockerd at /x failed: gone");
    let head = response(&bytes, false);
    assert_eq!((head.status, head.close), (502, true));
    let body: serde_json::Value = serde_json::from_slice(&bytes[head.head_len..]).unwrap();
    assert_eq!(body["message"], "forge-shim: dockerd at /x failed: gone");
    assert_eq!(head.framing, Framing::Length((bytes.len() - head.head_len) as u64));
}
