//! Self-tests of the fake Loki, Elasticsearch and generic HTTP receivers (`receivers.rs`): the protocol
//! they speak, the faults their modes inject, and that Drop stops every thread and closes
//! every connection. No Docker daemon is involved, so they run in the offline test binary;
//! the Docker-backed binary includes `receivers.rs` for its sink tests but not these.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::receivers::{LokiEntry, Mode, Receiver, WORKERS};

type Resp = (u16, String, String); // status, header block (lowercased), body

fn connect(r: &Receiver) -> BufReader<TcpStream> {
    let s = TcpStream::connect(r.url().trim_start_matches("http://")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

/// One HTTP/1.1 exchange on `c`, which stays usable (keep-alive); `hdrs` are "K: V\r\n" lines.
fn send(c: &mut BufReader<TcpStream>, head: &str, hdrs: &str, body: &[u8]) -> io::Result<Resp> {
    let len = body.len();
    let req = format!("{head} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n{hdrs}\r\n");
    c.get_mut().write_all(&[req.as_bytes(), body].concat())?;
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        if c.read_line(&mut head)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let head = head.to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| io::Error::other(head.clone()))?;
    let len = head.split("content-length: ").nth(1).map(str::lines);
    let len = len.and_then(|mut l| l.next());
    let mut body = vec![0; len.map_or(0, |l| l.parse().unwrap())];
    c.read_exact(&mut body)?;
    Ok((status, head, String::from_utf8(body).unwrap()))
}

fn call(r: &Receiver, head: &str, hdrs: &str, body: &[u8]) -> Resp {
    send(&mut connect(r), head, hdrs, body).expect("an HTTP exchange")
}

const CT_JSON: &str = "Content-Type: application/json\r\n";
const NDJSON: &str = "Content-Type: application/x-ndjson\r\n";
const PUSH: &str = "POST /loki/api/v1/push";

fn push(ts: &[&str]) -> Vec<u8> {
    let values: Vec<Value> = ts.iter().map(|t| json!([t, format!("line {t}")])).collect();
    let body = json!({"streams": [{"stream": {"app": "a"}, "values": values}]});
    body.to_string().into_bytes()
}

fn threads_named(name: &str) -> usize {
    let named = |t: &std::fs::DirEntry| {
        std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
    };
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks.flatten().filter(named).count()
}

#[test]
fn loki_accepts_labels_and_gzip() {
    let r = Receiver::loki();
    let first = json!({"streams": [
        {"stream": {"app": "a", "host": "h"}, "values": [["10", "one"], ["10", "two"]]},
        {"stream": {"app": "b"}, "values": [["5", "three", {"trace_id": "t"}]]}]});
    let auth = "Authorization: Basic dXNlcjpwYTpzcw==\r\n"; // user:pa:ss
    let first = first.to_string().into_bytes();
    assert_eq!(call(&r, PUSH, &format!("{CT_JSON}{auth}"), &first).0, 204);
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    gz.write_all(&push(&["20"])).unwrap();
    let hdrs = format!("{CT_JSON}Content-Encoding: gzip\r\nauthorization: bearer tok\r\n");
    assert_eq!(call(&r, PUSH, &hdrs, &gz.finish().unwrap()).0, 204);
    let text = "Content-Type: text/plain\r\n";
    assert_eq!(call(&r, PUSH, text, &push(&["30"])).0, 415);
    let other = call(&r, "POST /api/prom/push", CT_JSON, &push(&["30"]));
    assert_eq!(other.0, 404);
    let entries = r.loki_entries();
    let got = |e: &LokiEntry| format!("{}@{}:{}", e.labels["app"], e.ts_nanos, e.line);
    let got: Vec<String> = entries.iter().map(got).collect();
    assert_eq!(got, ["a@10:one", "a@10:two", "b@5:three", "a@20:line 20"]);
    assert_eq!(entries[0].labels.len(), 2);
    let reqs = r.requests();
    assert_eq!(format!("{} {}", reqs[0].method, reqs[0].path), PUSH);
    assert_eq!(reqs[0].basic_auth(), Some(("user".into(), "pa:ss".into())));
    assert!(!reqs[0].gzipped && reqs[1].gzipped && reqs[1].body == push(&["20"]));
    assert_eq!(reqs[1].bearer().as_deref(), Some("tok"));
    assert_eq!(reqs[1].header("CONTENT-encoding"), Some("gzip"));
    let four = |r: &Receiver| r.requests().len() == 4;
    r.wait_for("4 requests", Duration::from_secs(1), four);
}

#[test]
fn loki_rejects_what_loki_rejects() {
    let r = Receiver::loki();
    let stream = |labels: Value, values: Value| {
        let body = json!({"streams": [{"stream": labels, "values": values}]});
        body.to_string().into_bytes()
    };
    let bad = [
        push(&["20", "10"]),
        stream(json!({}), json!([["1", "x"]])),
        stream(json!({"bad-name": "a"}), json!([["1", "x"]])),
        stream(json!({"app": "a"}), json!([[1, "x"]])),
        stream(json!({"app": "a"}), json!([["1.5", "x"]])),
        b"{\"streams\": [".to_vec(),
    ];
    let replies: Vec<Resp> = bad.iter().map(|b| call(&r, PUSH, CT_JSON, b)).collect();
    assert!(replies.iter().all(|reply| reply.0 == 400), "{replies:?}");
    let order = "'entry out of order' for stream: {app=\"a\"}";
    assert!(replies[0].2.contains(order) && replies[2].2.contains("invalid label name"));
    assert!(r.loki_entries().is_empty());
    assert_eq!(r.requests().len(), bad.len());
}

#[test]
fn elasticsearch_bulk_items_fail_individually() {
    let r = Receiver::elasticsearch();
    r.set_item_failures(|d| match d["n"].as_i64() {
        Some(2) => Some((429, "rejected execution of coordinating operation".into())),
        Some(3) => Some((400, "failed to parse field [n]".into())),
        _ => None,
    });
    let mut body = String::new();
    for n in 1..=4 {
        body += &format!("{{\"create\":{{\"_index\":\"logs-{n}\"}}}}\n{{\"n\":{n}}}\n");
    }
    body += "{\"index\":{\"_index\":\"logs-5\"}}\nnot json\n";
    let (status, head, resp) = call(&r, "POST /_bulk", NDJSON, body.as_bytes());
    assert!(status == 200 && head.contains("x-elastic-product: elasticsearch"));
    let v: Value = serde_json::from_str(&resp).unwrap();
    let items = v["items"].as_array().unwrap();
    let item = |i: usize| &items[i][if i < 4 { "create" } else { "index" }];
    let statuses: Vec<_> = (0..5)
        .map(|i| item(i)["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        (statuses, &v["errors"]),
        (vec![201, 429, 400, 201, 400], &json!(true))
    );
    let kind = |i: usize| item(i)["error"]["type"].as_str().unwrap();
    assert_eq!(kind(1), "es_rejected_execution_exception");
    assert_eq!(
        (kind(2), &item(1)["_index"]),
        ("mapper_parsing_exception", &json!("logs-2"))
    );
    let docs: Vec<_> = r.es_docs().into_iter().map(|d| (d.index, d.doc)).collect();
    let want = [
        ("logs-1".into(), json!({"n": 1})),
        ("logs-4".into(), json!({"n": 4})),
    ];
    assert_eq!(docs, want);
    assert_eq!(call(&r, "POST /_bulk", CT_JSON, body.as_bytes()).0, 406);
    let (status, _, err) = call(&r, "POST /_bulk", NDJSON, body.trim_end().as_bytes());
    let err: Value = serde_json::from_str(&err).unwrap();
    let kind = err["error"]["type"].as_str();
    assert_eq!((status, kind), (400, Some("illegal_argument_exception")));
    let delete = b"{\"delete\":{\"_index\":\"x\"}}\n";
    assert_eq!(call(&r, "POST /_bulk", NDJSON, delete).0, 400);
    let (status, _, root) = call(&r, "GET /", "", b"");
    assert!(status == 200 && root.contains("\"number\":\"8."), "{root}");
    assert_eq!((r.es_docs().len(), r.requests().len()), (2, 5));
}

#[test]
fn http_endpoint_keeps_posts_on_any_path_gunzipped() {
    let r = Receiver::http();
    let ndjson = b"{\"message\":\"one\"}\n{\"message\":\"two\"}\n";
    let post = "POST /insert/jsonline?_msg_field=message";
    let hdrs = format!("{NDJSON}X-Api-Key: k3y\r\n");
    assert_eq!(call(&r, post, &hdrs, ndjson).0, 200);
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    gz.write_all(b"[{\"message\":\"three\"}]").unwrap();
    let hdrs = format!("{CT_JSON}Content-Encoding: gzip\r\n");
    assert_eq!(call(&r, "POST /", &hdrs, &gz.finish().unwrap()).0, 200);
    assert_eq!(call(&r, "GET /", "", b"").0, 405);
    r.set_mode(Mode::Status(400, "bad record".into()));
    let (status, _, body) = call(&r, "POST /x", NDJSON, ndjson);
    assert_eq!((status, &body[..]), (400, "bad record"));
    let accepted = r.accepted();
    assert_eq!(accepted.len(), 2, "the 405 and the 400 are not kept");
    assert_eq!(accepted[0].path, "/insert/jsonline?_msg_field=message");
    assert_eq!(
        (&accepted[0].body[..], accepted[0].gzipped),
        (&ndjson[..], false)
    );
    assert_eq!(accepted[0].header("x-api-key"), Some("k3y"));
    assert_eq!(accepted[1].body, b"[{\"message\":\"three\"}]");
    assert!(accepted[1].gzipped);
    assert_eq!(r.requests().len(), 4);
}

#[test]
fn status_and_retry_after_modes() {
    let r = Receiver::loki();
    r.set_mode(Mode::RetryAfter(7));
    let (status, head, _) = call(&r, PUSH, CT_JSON, &push(&["1"]));
    assert_eq!(
        (status, head.contains("\r\nretry-after: 7\r\n")),
        (429, true)
    );
    r.set_mode(Mode::Status(400, "entry too far behind".into()));
    let (status, _, body) = call(&r, PUSH, CT_JSON, &push(&["1"]));
    assert_eq!((status, &body[..]), (400, "entry too far behind"));
    assert!(r.loki_entries().is_empty());
    r.set_mode(Mode::Ok);
    assert_eq!(call(&r, PUSH, CT_JSON, &push(&["1"])).0, 204);
    assert_eq!((r.loki_entries().len(), r.requests().len()), (1, 3));
}

#[test]
fn hang_holds_requests_until_the_mode_changes() {
    let r = Receiver::elasticsearch();
    r.set_mode(Mode::Hang);
    let (tx, rx) = std::sync::mpsc::channel();
    let hung: Vec<_> = (0..2)
        .map(|_| {
            let (mut c, tx) = (connect(&r), tx.clone());
            thread::spawn(move || tx.send(send(&mut c, "GET /", "", b"").ok().map(|r| r.0)))
        })
        .collect();
    let two = |r: &Receiver| r.requests().len() == 2;
    r.wait_for("2 hung requests", Duration::from_secs(2), two);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    r.set_mode(Mode::Ok);
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)).unwrap(), Some(503));
    }
    hung.into_iter().for_each(|h| h.join().unwrap().unwrap());
    assert_eq!(call(&r, "GET /", "", b"").0, 200);
}

#[test]
fn refuse_closes_the_port_and_ok_rebinds_it() {
    let r = Receiver::loki();
    let url = r.url();
    let mut kept = connect(&r);
    assert_eq!(send(&mut kept, "GET /ready", "", b"").unwrap().0, 404);
    r.set_mode(Mode::Refuse);
    let err = TcpStream::connect(url.trim_start_matches("http://")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(send(&mut kept, "GET /ready", "", b"").is_err());
    r.set_mode(Mode::Ok);
    assert_eq!(r.url(), url);
    assert_eq!(call(&r, PUSH, CT_JSON, &push(&["1"])).0, 204);
    for mode in [Mode::Refuse, Mode::Hang, Mode::Refuse, Mode::Ok] {
        r.set_mode(mode);
    }
    assert_eq!(call(&r, PUSH, CT_JSON, &push(&["2"])).0, 204);
    assert_eq!(r.loki_entries().len(), 2);
}

#[test]
fn drop_stops_every_thread() {
    let tasks = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let (before, mut ports) = (tasks(), vec![]);
    let named = |kind: &str, port: &str| threads_named(&format!("fakerx-{kind}-{port}"));
    for i in 0..5 {
        let r = [Receiver::loki, Receiver::elasticsearch][i % 2]();
        let port = r.url().rsplit(':').next().unwrap().to_string();
        let mut kept = connect(&r);
        assert!(send(&mut kept, "GET /", "", b"").is_ok());
        r.set_mode(Mode::Hang);
        let mut c = connect(&r);
        let hung = thread::spawn(move || send(&mut c, "GET /", "", b"").ok().map(|r| r.0));
        let two = |r: &Receiver| r.requests().len() == 2;
        r.wait_for("the hung request", Duration::from_secs(2), two);
        assert_eq!(named("w", &port), WORKERS);
        assert!(named("h", &port) >= 5, "tiny_http's threads are not named");
        // Drop gives the connections up to 1 s to end; 10 s only catches a hang.
        let t0 = Instant::now();
        drop(r);
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!((hung.join().unwrap(), named("w", &port)), (Some(503), 0));
        assert!(
            send(&mut kept, "GET /", "", b"").is_err(),
            "a connection survived"
        );
        ports.push(port);
    }
    // tiny_http's pool threads are detached; they end ~5 s after their server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ports.iter().map(|p| named("h", p)).sum::<usize>() > 0 {
        assert!(Instant::now() < deadline, "tiny_http threads left");
        thread::sleep(Duration::from_millis(100));
    }
    // Other tests of this binary may be running: the named counts above are the exact check.
    eprintln!(
        "threads of this process: {before} before, {} after",
        tasks()
    );
}
