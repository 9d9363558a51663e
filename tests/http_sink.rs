//! The generic HTTP sink (`type = "http"`) against a loopback endpoint (tests/receivers.rs,
//! `Receiver::http`) and real containers: NDJSON and JSON-array bodies that hold exactly the
//! file sink's records, gzip on and off, custom headers that arrive but are never logged or
//! printed by --check-config, basic and bearer auth, 503 and 429 (Retry-After) retried then
//! delivered once, a 400 counted and dropped, and an outage with every line exactly once.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::receivers::{Mode, Receiver, Request};
use crate::util::{shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(60);

fn http_sink(r: &Receiver, path: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"http\"\nurl = \"{}{path}\"\n{extra}\n",
        r.url()
    )
}

/// The records of one request: NDJSON lines, or the items of a JSON array.
fn records_of(req: &Request) -> Vec<Value> {
    let text = String::from_utf8_lossy(&req.body);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => items,
        _ => text
            .lines()
            .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
            .collect(),
    }
}

/// Every record of the requests answered 200, in order.
fn received(r: &Receiver) -> Vec<Value> {
    r.accepted().iter().flat_map(records_of).collect()
}

/// Counts of "<prefix> i" messages for i in 1..=n: (missing, duplicated).
fn tally<'a>(messages: impl Iterator<Item = &'a str>, prefix: &str, n: usize) -> (usize, usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for m in messages {
        let i = m.strip_prefix(prefix).and_then(|s| s.strip_prefix(' '));
        if let Some(i) = i.and_then(|s| s.parse().ok()) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing = (1..=n).filter(|i| !seen.contains_key(i)).count();
    (missing, seen.values().map(|c| c - 1).sum())
}

fn messages(records: &[Value]) -> impl Iterator<Item = &str> {
    records.iter().map(|r| r["message"].as_str().unwrap_or(""))
}

/// Waits until the endpoint and the file sink both have `n` records of `name`, then a
/// little longer, so that a repeat would show.
fn settle(cap: &Capturer, rx: &Receiver, name: &str, n: usize) {
    rx.wait_for(&format!("{n} records"), WAIT, |r| received(r).len() >= n);
    cap.wait_records(name, n, WAIT);
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn http_ndjson_is_the_file_sinks_bytes_with_gzip_headers_and_basic_auth() {
    let _daemon = shared_daemon();
    let rx = Receiver::http();
    let name = unique("http-ndjson");
    let path = "/insert/jsonline?_msg_field=message&_time_field=time";
    let extra = "headers = { \"X-Api-Key\" = \"hdr-s3cret-1\", X-Scope = \"hdr-s3cret-2\" }\n\
                 username = \"u\"\npassword = \"pw-s3cret-3\"\n";
    let cap = Capturer::start(&name, &http_sink(&rx, path, extra));
    let c = Container::run(
        &name,
        &[],
        "for i in $(seq 1 200); do echo \"n $i\"; echo \"e $i\" >&2; done",
    );
    c.wait();
    settle(&cap, &rx, &name, 400);

    let sent: Vec<u8> = rx.accepted().iter().flat_map(|r| r.body.clone()).collect();
    let file = std::fs::read(&cap.out).expect("the file sink's output");
    assert!(
        sent == file,
        "the bodies, end to end, are the file sink's bytes"
    );
    let records = received(&rx);
    assert_eq!(tally(messages(&records), "n", 200), (0, 0));
    assert_eq!(tally(messages(&records), "e", 200), (0, 0));
    assert_eq!(records.len(), 400);
    assert!(records.iter().all(|r| r["container_name"] == name.as_str()));
    for req in rx.requests() {
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", path));
        assert!(req.gzipped, "gzip is on by default");
        assert_eq!(req.header("Content-Type"), Some("application/x-ndjson"));
        assert_eq!(req.header("X-Api-Key"), Some("hdr-s3cret-1"));
        assert_eq!(req.header("x-scope"), Some("hdr-s3cret-2"));
        let basic = Some(("u".to_string(), "pw-s3cret-3".to_string()));
        assert_eq!(req.basic_auth(), basic);
    }
    assert_eq!(
        cap.metric("log_capturer_sink_records_total"),
        800.0,
        "file and http"
    );

    let config = cap.dir.path().join("config.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_log-capturer"))
        .arg("--check-config")
        .arg("--config")
        .arg(&config)
        .env_remove("DOCKER_HOST")
        .env_remove("LOG_CAPTURER_TEST_IMAGE")
        .env_remove("LOG_CAPTURER_IMAGE")
        .output()
        .expect("run --check-config");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("X-Api-Key"), "{printed}");
    assert_eq!(printed.matches("\"<redacted>\"").count(), 3, "{printed}");
    for secret in ["hdr-s3cret-1", "hdr-s3cret-2", "pw-s3cret-3"] {
        assert!(
            !cap.log().contains(secret),
            "{secret} in the capturer's log"
        );
        assert!(
            !printed.contains(secret),
            "{secret} printed by --check-config"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains(secret),
            "{secret} in --check-config's stderr"
        );
    }
}

#[test]
fn http_json_array_without_gzip_and_bearer_token() {
    let _daemon = shared_daemon();
    let rx = Receiver::http();
    let name = unique("http-array");
    let extra = "format = \"json_array\"\ngzip = false\nbearer_token = \"b3arer-tok\"\n";
    let cap = Capturer::start(&name, &http_sink(&rx, "/ingest", extra));
    let c = Container::run(&name, &[], "for i in $(seq 1 150); do echo \"n $i\"; done");
    c.wait();
    settle(&cap, &rx, &name, 150);

    for req in rx.requests() {
        assert!(!req.gzipped && req.header("Content-Encoding").is_none());
        assert_eq!(req.header("Content-Type"), Some("application/json"));
        assert_eq!(req.bearer().as_deref(), Some("b3arer-tok"));
        let body: Value = serde_json::from_slice(&req.body).expect("a JSON body");
        assert!(body.is_array(), "one JSON array per request");
    }
    let records = received(&rx);
    assert_eq!(records, cap.records(), "the file sink's records, in order");
    assert_eq!(tally(messages(&records), "n", 150), (0, 0));
    assert!(!cap.log().contains("b3arer-tok"));
}

#[test]
fn http_503_and_429_are_retried_then_every_line_arrives_once() {
    let _daemon = shared_daemon();
    let rx = Receiver::http();
    rx.set_mode(Mode::Status(503, "intake unavailable".into()));
    let name = unique("http-retry");
    let cap = Capturer::start(&name, &http_sink(&rx, "/ingest", ""));
    let c = Container::run(&name, &[], "for i in $(seq 1 50); do echo \"n $i\"; done");
    c.wait();
    rx.wait_for("a retry of the 503", WAIT, |r| r.requests().len() >= 2);
    rx.set_mode(Mode::RetryAfter(2));
    // A request recorded after the switch was answered 429 with Retry-After: 2.
    let before = rx.requests().len();
    rx.wait_for("a 429", WAIT, |r| r.requests().len() > before);
    let answered = Instant::now();
    rx.set_mode(Mode::Ok);
    rx.wait_for("a request taken", WAIT, |r| !r.accepted().is_empty());
    assert!(
        answered.elapsed() >= Duration::from_millis(1900),
        "Retry-After: 2 waited {:?}",
        answered.elapsed()
    );
    settle(&cap, &rx, &name, 50);
    let records = received(&rx);
    assert_eq!(tally(messages(&records), "n", 50), (0, 0));
    assert_eq!(records.len(), 50, "nothing repeated");
    assert!(cap.metric("log_capturer_sink_retries_total") >= 2.0);
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
    assert!(
        cap.log().contains("intake unavailable"),
        "the reason is logged"
    );
}

#[test]
fn http_400_is_counted_and_dropped_not_retried_forever() {
    let _daemon = shared_daemon();
    let rx = Receiver::http();
    rx.set_mode(Mode::Status(
        400,
        "cannot parse record: no _msg field".into(),
    ));
    let name = unique("http-reject");
    let cap = Capturer::start(&format!("{name}*"), &http_sink(&rx, "/ingest", ""));
    let c = Container::run(&name, &[], "echo one; echo two; echo three");
    c.wait();
    wait_for(WAIT, "3 records rejected", || {
        (cap.metric("log_capturer_sink_rejected_records_total") == 3.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let sent: Vec<Value> = rx.requests().iter().flat_map(records_of).collect();
    let mut sent: Vec<&str> = messages(&sent).collect();
    sent.sort();
    assert_eq!(
        sent,
        ["one", "three", "two"],
        "each sent once: no retry of a 400"
    );
    assert!(rx.accepted().is_empty());
    assert!(cap.log().contains("no _msg field"), "the reason is logged");
    // The pipeline goes on.
    rx.set_mode(Mode::Ok);
    let later = Container::run(&format!("{name}-later"), &[], "echo later");
    later.wait();
    rx.wait_for("the later line", WAIT, |r| {
        messages(&received(r)).any(|m| m == "later")
    });
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 3.0);
}

#[test]
fn http_outage_then_recovery_every_line_exactly_once() {
    let _daemon = shared_daemon();
    let rx = Receiver::http();
    let name = unique("http-outage");
    let cap = Capturer::start(&name, &http_sink(&rx, "/ingest", ""));
    let n = 6000;
    let c = Container::run(
        &name,
        &[],
        &format!("i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"n $i\"; if [ $((i % 50)) -eq 0 ]; then sleep 0.1; fi; done"),
    );
    cap.wait_records(&name, 500, WAIT);
    rx.set_mode(Mode::Refuse);
    std::thread::sleep(Duration::from_secs(8));
    let during = cap.records_of(&name).len();
    rx.set_mode(Mode::Ok);
    c.wait();
    settle(&cap, &rx, &name, n);
    let records = received(&rx);
    let file = cap.records_of(&name);
    let http_tally = tally(messages(&records), "n", n);
    let file_tally = tally(messages(&file), "n", n);
    eprintln!(
        "8 s outage: the file had {during} records when it ended; \
         http (missing, dup) = {http_tally:?}, file = {file_tally:?}"
    );
    assert_eq!(http_tally, (0, 0));
    assert_eq!(file_tally, (0, 0));
    assert_eq!(records.len(), n);
    assert!(cap.metric("log_capturer_sink_retries_total") >= 1.0);
}
