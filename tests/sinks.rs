//! The network sinks against protocol-faithful receivers (tests/receivers.rs) and real
//! containers: Loki labels, tenant, auth and gzip; Elasticsearch bulk with per-item
//! retries; rejections dropped, not retried forever; Retry-After; hangs; an outage of one
//! sink with recovery, exactly once to every sink; a bounded shutdown with a hung sink.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::receivers::{Mode, Receiver};
use crate::util::{shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(60);

fn loki_sink(r: &Receiver, extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"loki\"\nurl = \"{}\"\n{extra}\n",
        r.url()
    )
}

fn es_sink(r: &Receiver, extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"elasticsearch\"\nurl = \"{}\"\n{extra}\n",
        r.url()
    )
}

/// Counts of "n i" messages: (missing, duplicated).
fn tally<'a>(messages: impl Iterator<Item = &'a str>, n: usize) -> (usize, usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for m in messages {
        if let Some(i) = m.strip_prefix("n ").and_then(|s| s.parse().ok()) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing = (1..=n).filter(|i| !seen.contains_key(i)).count();
    (missing, seen.values().map(|c| c - 1).sum())
}

#[test]
fn loki_gets_every_line_with_labels_tenant_auth_and_gzip() {
    let _daemon = shared_daemon();
    let loki = Receiver::loki();
    let name = unique("loki");
    let cap = Capturer::start(
        &name,
        &loki_sink(
            &loki,
            "tenant_id = \"team-a\"\nusername = \"u\"\npassword = \"s3cret-pw\"\n",
        ),
    );
    let c = Container::run(
        &name,
        &[],
        "for i in $(seq 1 200); do echo \"n $i\"; echo \"e $i\" >&2; done",
    );
    c.wait();
    loki.wait_for("400 Loki entries", WAIT, |r| r.loki_entries().len() >= 400);
    let entries = loki.loki_entries();
    assert_eq!(entries.len(), 400);
    let out: Vec<&str> = entries
        .iter()
        .filter(|e| e.labels["stream"] == "stdout")
        .map(|e| e.line.as_str())
        .collect();
    let want: Vec<String> = (1..=200).map(|i| format!("n {i}")).collect();
    assert_eq!(out, want, "stdout entries once, in order");
    for e in &entries {
        assert_eq!(e.labels["job"], "docker");
        assert_eq!(e.labels["container"], name.as_str());
        assert!(!e.labels["host"].is_empty());
        assert_eq!(e.labels.len(), 4);
    }
    for req in loki.requests() {
        assert!(req.gzipped, "gzip is on by default");
        assert_eq!(req.header("X-Scope-OrgID"), Some("team-a"));
        assert_eq!(
            req.basic_auth(),
            Some(("u".to_string(), "s3cret-pw".to_string()))
        );
    }
    assert!(!cap.log().contains("s3cret-pw"), "no secret in the logs");
    assert_eq!(
        cap.metric("log_capturer_sink_records_total"),
        800.0,
        "file and loki"
    );
}

#[test]
fn elasticsearch_retries_only_the_items_that_failed() {
    let _daemon = shared_daemon();
    let es = Receiver::elasticsearch();
    let refused_once = Arc::new(AtomicBool::new(false));
    let flag = refused_once.clone();
    es.set_item_failures(move |doc| match doc["message"].as_str() {
        Some("n 7") if !flag.swap(true, Ordering::SeqCst) => {
            Some((429, "es_rejected_execution_exception".into()))
        }
        Some("n 9") => Some((400, "mapper_parsing_exception: failed to parse".into())),
        _ => None,
    });
    let name = unique("es");
    let cap = Capturer::start(
        &name,
        &es_sink(&es, "api_key = \"k3y-value\"\nindex = \"logs-%Y.%m.%d\"\n"),
    );
    let c = Container::run(&name, &[], "for i in $(seq 1 20); do echo \"n $i\"; done");
    c.wait();
    es.wait_for("19 documents", WAIT, |r| r.es_docs().len() >= 19);
    std::thread::sleep(Duration::from_millis(500));
    let docs = es.es_docs();
    let messages: Vec<&str> = docs
        .iter()
        .filter_map(|d| d.doc["message"].as_str())
        .collect();
    assert_eq!(
        tally(messages.iter().copied(), 20),
        (1, 0),
        "only n 9 (rejected) missing, no duplicates"
    );
    assert!(!messages.contains(&"n 9"));
    // The retry is the last request that carries "n 7" (the lines may have come in more
    // than one batch).
    let requests = es.requests();
    let last = requests
        .iter()
        .rev()
        .find(|r| String::from_utf8_lossy(&r.body).contains("\"n 7\""))
        .unwrap();
    let resent = String::from_utf8_lossy(&last.body);
    assert_eq!(
        resent.lines().count(),
        2,
        "the retry carries only the failed item:\n{resent}"
    );
    assert!(resent.contains("\"n 7\""));
    for d in &docs {
        assert!(
            d.index.starts_with("logs-20") && d.index.len() == "logs-2026.11.26".len(),
            "{}",
            d.index
        );
        assert!(d.doc["@timestamp"].is_string());
        assert_eq!(d.doc["container_name"], name.as_str());
    }
    assert_eq!(last.header("Authorization"), Some("ApiKey k3y-value"));
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 1.0);
    assert!(
        cap.log().contains("mapper_parsing_exception"),
        "the server's reason is logged"
    );
    assert!(!cap.log().contains("k3y-value"));
}

#[test]
fn a_rejected_batch_is_dropped_not_retried_forever() {
    let _daemon = shared_daemon();
    let loki = Receiver::loki();
    loki.set_mode(Mode::Status(400, "entry too far behind for stream".into()));
    let name = unique("reject");
    let cap = Capturer::start(&format!("{name}*"), &loki_sink(&loki, ""));
    let c = Container::run(&name, &[], "echo one; echo two; echo three");
    c.wait();
    wait_for(WAIT, "3 records rejected", || {
        (cap.metric("log_capturer_sink_rejected_records_total") == 3.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    // The lines may come in one batch or more; none is sent twice.
    let mut sent: Vec<String> = Vec::new();
    for r in loki.requests() {
        let push: serde_json::Value = serde_json::from_slice(&r.body).expect("a Loki push");
        for stream in push["streams"].as_array().into_iter().flatten() {
            for v in stream["values"].as_array().into_iter().flatten() {
                sent.push(v[1].as_str().unwrap_or("").to_owned());
            }
        }
    }
    sent.sort();
    assert_eq!(sent, ["one", "three", "two"], "no retry of a 400");
    assert!(
        cap.log().contains("entry too far behind"),
        "the reason is logged"
    );
    // The pipeline goes on.
    loki.set_mode(Mode::Ok);
    let later = Container::run(&format!("{name}-later"), &[], "echo later");
    later.wait();
    loki.wait_for("the later line", WAIT, |r| {
        r.loki_entries().iter().any(|e| e.line == "later")
    });
}

#[test]
fn retry_after_is_honoured_and_a_hang_times_out() {
    let _daemon = shared_daemon();
    let loki = Receiver::loki();
    loki.set_mode(Mode::RetryAfter(2));
    let name = unique("retry-after");
    let _cap = Capturer::start(
        &name,
        &loki_sink(&loki, "timeout = \"1s\"\nbearer_token = \"t0ken\"\n"),
    );
    let c = Container::run(&name, &[], "echo only");
    c.wait();
    loki.wait_for("the first push", WAIT, |r| !r.requests().is_empty());
    let first = Instant::now();
    loki.set_mode(Mode::Hang);
    loki.wait_for("the second push", WAIT, |r| r.requests().len() >= 2);
    assert!(
        first.elapsed() >= Duration::from_millis(1900),
        "Retry-After: 2 waited {:?}",
        first.elapsed()
    );
    loki.set_mode(Mode::Ok);
    loki.wait_for("delivery after the hang timed out", WAIT, |r| {
        r.loki_entries().len() == 1
    });
    let tokens: Vec<Option<String>> = loki.requests().iter().map(|r| r.bearer()).collect();
    assert!(
        tokens.iter().all(|t| t.as_deref() == Some("t0ken")),
        "{tokens:?}"
    );
}

#[test]
fn outage_of_one_sink_then_recovery_exactly_once_everywhere() {
    let _daemon = shared_daemon();
    let loki = Receiver::loki();
    let name = unique("outage");
    let cap = Capturer::start(&name, &loki_sink(&loki, ""));
    let n = 20_000;
    let c = Container::run(
        &name,
        &[],
        &format!("i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"n $i\"; if [ $((i % 50)) -eq 0 ]; then sleep 0.1; fi; done"),
    );
    cap.wait_records(&name, 500, WAIT);
    loki.set_mode(Mode::Refuse);
    std::thread::sleep(Duration::from_secs(30));
    let during = cap.records_of(&name).len();
    let rss_kib = peak_rss_kib(cap.pid());
    loki.set_mode(Mode::Ok);
    c.wait();
    loki.wait_for("every line in Loki", WAIT, |r| r.loki_entries().len() >= n);
    std::thread::sleep(Duration::from_millis(500));
    let entries = loki.loki_entries();
    let file = cap.records_of(&name);
    let loki_tally = tally(entries.iter().map(|e| e.line.as_str()), n);
    let file_tally = tally(file.iter().map(|r| r["message"].as_str().unwrap_or("")), n);
    eprintln!(
        "30 s Loki outage: file had {during} records when it ended (backpressure); peak RSS {:.1} MiB; \
         loki (missing, dup) = {loki_tally:?}, file = {file_tally:?}",
        rss_kib as f64 / 1024.0
    );
    assert_eq!(loki_tally, (0, 0));
    assert_eq!(file_tally, (0, 0));
    assert!(cap.metric("log_capturer_sink_retries_total") >= 1.0);
}

#[test]
fn shutdown_with_a_hung_sink_is_bounded_and_loses_nothing() {
    let _daemon = shared_daemon();
    let loki = Receiver::loki();
    loki.set_mode(Mode::Hang);
    let name = unique("hung");
    let mut cap = Capturer::start(
        &name,
        &format!(
            "[pipeline]\nshutdown_timeout = \"2s\"\n{}",
            loki_sink(&loki, "")
        ),
    );
    let c = Container::run(&name, &[], "for i in $(seq 1 10); do echo \"n $i\"; done");
    c.wait();
    loki.wait_for("a hung push", WAIT, |r| !r.requests().is_empty());
    // The stop is bounded by shutdown_timeout (2 s); 5x that only catches a stop that
    // waits on the hung request (how long a stop takes is not judged here).
    let (status, took) = cap.terminate(Duration::from_secs(30));
    assert!(status.success());
    assert!(
        took < Duration::from_secs(10),
        "stop took {took:?} with shutdown_timeout = 2s: it waited on the hung sink"
    );
    loki.set_mode(Mode::Ok);
    cap.restart();
    loki.wait_for("the 10 lines after the restart", WAIT, |r| {
        r.loki_entries().len() >= 10
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        tally(loki.loki_entries().iter().map(|e| e.line.as_str()), 10),
        (0, 0)
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
