//! What an operator sees: /metrics (valid for promtool, every metric the README lists), /health,
//! /streams, and the stdout sink. /health with Docker unreachable (degraded with reasons,
//! not fatal) is in `no_daemon.rs`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{http_get, unique, wait_for, Capturer, Container};

const DOCUMENTED_METRICS: &[&str] = &[
    "log_capturer_docker_http_requests_total",
    "log_capturer_docker_http_errors_total",
    "log_capturer_docker_http_connections_opened_total",
    "log_capturer_docker_http_idle_connections",
    "log_capturer_docker_http_active_connections",
    "log_capturer_active_streams",
    "log_capturer_stream_starts_total",
    "log_capturer_stream_ends_total",
    "log_capturer_records_total",
    "log_capturer_bytes_total",
    "log_capturer_partial_lines_merged_total",
    "log_capturer_lines_truncated_total",
    "log_capturer_duplicates_skipped_total",
    "log_capturer_queue_records",
    "log_capturer_queue_bytes",
    "log_capturer_sink_records_total",
    "log_capturer_sink_errors_total",
    "log_capturer_sink_retries_total",
    "log_capturer_positions_flushes_total",
    "log_capturer_positions_errors_total",
    "log_capturer_events_reconnects_total",
    "log_capturer_lag_seconds",
    "process_open_fds",
    "process_threads",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
];

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (scripts/test.sh installs Debian's prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_health_and_streams_while_following() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("endpoints");
    let cap = Capturer::start(&name, "[[sinks]]\ntype = \"stdout\"\n");
    let c = Container::run(
        &name,
        &[],
        "i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.1; done",
    );
    cap.wait_records(&name, 5, Duration::from_secs(30));

    let streams = cap.streams();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let s = &streams[0];
    assert_eq!(s["container_id"], c.id.as_str());
    assert_eq!(s["container_name"], name.as_str());
    assert_eq!(s["state"], "following");
    assert!(s["records"].as_u64().unwrap() >= 5);
    assert!(s["bytes"].as_u64().unwrap() >= 5 * 6);
    assert!(s["last_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["reconnects"], 0);

    let (status, body) = http_get(cap.port, "/health").unwrap();
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let metrics = cap.metrics();
    for m in DOCUMENTED_METRICS {
        assert!(
            metrics.lines().any(|l| l.starts_with(m)),
            "metric {m} missing from /metrics"
        );
    }
    promtool_check(&metrics);
    assert_eq!(cap.metric("log_capturer_active_streams"), 1.0);
    assert!(
        cap.metric("log_capturer_docker_http_active_connections") >= 2.0,
        "events + logs"
    );

    assert_eq!(http_get(cap.port, "/nope").unwrap().0, 404);

    // The stdout sink got the same records as the file sink, in the same order.
    let file: Vec<_> = cap.records_of(&name).into_iter().take(5).collect();
    let stdout: Vec<_> = wait_for(Duration::from_secs(10), "stdout records", || {
        let r: Vec<_> = cap
            .stdout_records()
            .into_iter()
            .filter(|r| r["container_name"] == name.as_str())
            .collect();
        (r.len() >= 5).then_some(r)
    });
    assert_eq!(file, stdout[..5].to_vec());
}

/// Sends raw bytes to the endpoint server and returns what it answered (until it closed).
fn raw_request(port: u16, bytes: &[u8]) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A hostile or broken client cannot crash the server, make it read a body, or grow its
/// threads and FDs: an announced 1 PB body, an endless head, a POST, 300 connections that
/// send nothing. tiny_http, used before, aborted the process on the first and kept a
/// thread per idle connection on the last.
#[test]
fn hostile_http_clients_cannot_crash_it_or_grow_it() {
    let _daemon = crate::util::shared_daemon();
    let mut cap = Capturer::start(&unique("hostile"), "");
    let (threads, fds) = (cap.threads(), cap.fds());
    let big = raw_request(
        cap.port,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999\r\n\r\n",
    );
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
    let chunked = raw_request(
        cap.port,
        b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 413 "), "{chunked}");
    let mut endless = b"GET /metrics HTTP/1.1\r\n".to_vec();
    endless.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let endless = raw_request(cap.port, &endless);
    assert!(
        endless.is_empty() || endless.starts_with("HTTP/1.1 431 "),
        "{endless:.100}"
    );
    let post = raw_request(
        cap.port,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD"),
        "{post}"
    );
    let head = raw_request(cap.port, b"HEAD /health HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 ") && head.ends_with("\r\n\r\n"),
        "{head}"
    );

    let idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", cap.port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let busy_threads = cap.threads();
    assert_eq!(
        busy_threads,
        threads,
        "threads with {} idle connections",
        idle.len()
    );
    drop(idle);
    let (status, _) = wait_for(Duration::from_secs(15), "/metrics after the flood", || {
        http_get(cap.port, "/metrics")
    });
    assert_eq!(status, 200);
    assert!(cap.child.try_wait().unwrap().is_none(), "still running");
    let after = wait_for(Duration::from_secs(10), "FDs back to baseline", || {
        let now = cap.fds();
        (now <= fds).then_some(now)
    });
    eprintln!("endpoint server: threads {threads} -> {busy_threads} with 300 idle connections; FDs {fds} -> {after}");
    let (exit, _) = cap.terminate(Duration::from_secs(5));
    assert!(exit.success());
}
