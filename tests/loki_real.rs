//! The Loki sink against a real Grafana Loki 3.6 (built with the `real-loki` feature;
//! scripts/test.sh starts the instances and sets LOKI_URL, LOKI_MT_URL and LOKI_BIN, see
//! tests/loki/loki.yaml), read back through `/loki/api/v1/query_range`: every line once
//! with its labels and streams (gzip on and off, JSON lines), tenants, and what Loki
//! refuses: entries too far behind, lines too long (both a partial 400: the rest of the
//! push is kept), a rate limit (429, retried), and a restart of Loki under load. Each test
//! has its own label values, so tests sharing an instance do not see each other's lines.
//! Loki returns an entry written twice with the same time and line once, so a repeat of
//! a whole batch would not show here; the file sink tests catch those.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::loki_util::{counts, env, once, sink_metric, Entry, LokiQuery, OwnLoki};
use crate::util::{docker, shared_daemon, unique, Capturer, Container};

const WAIT: Duration = Duration::from_secs(120);

/// A `[[sinks]]` entry of type loki; `labels` is the inline table's content.
fn loki_sink(url: &str, labels: &str, extra: &str) -> String {
    format!("[[sinks]]\ntype = \"loki\"\nurl = \"{url}\"\nlabels = {{ {labels} }}\n{extra}\n")
}

/// `n 1` .. `n N` on stdout, and `e 1` .. `e N/4` on stderr after every fourth.
fn both_streams(n: usize) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"n $i\"; \
         if [ $((i % 4)) -eq 0 ]; then echo \"e $((i/4))\" >&2; fi; done"
    )
}

/// The labels Loki returns, without the two it adds itself.
fn own_labels(e: &Entry) -> Vec<(&str, &str)> {
    e.labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "service_name" | "detected_level"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn every_line_once_with_its_labels_and_streams_gzip_or_not_and_as_json() {
    let _daemon = shared_daemon();
    let url = env("LOKI_URL");
    let u = unique("lk-all");
    let labels = |job: &str| {
        format!("job = \"{job}\", container = \"{{container_name}}\", stream = \"{{stream}}\"")
    };
    let sinks = [
        loki_sink(&url, &labels(&format!("{u}-gz")), "gzip = true"),
        loki_sink(&url, &labels(&format!("{u}-plain")), "gzip = false"),
        loki_sink(
            &url,
            &labels(&format!("{u}-json")),
            "line_format = \"json\"",
        ),
    ];
    let cap = Capturer::start(&format!("{u}-c*"), &sinks.concat());
    let n = 2000;
    let names: Vec<String> = (0..3).map(|i| format!("{u}-c{i}")).collect();
    let containers: Vec<Container> = names
        .iter()
        .map(|name| Container::run(name, &[], &both_streams(n)))
        .collect();
    containers.iter().for_each(Container::wait);
    let total = names.len() * (n + n / 4);
    for job in ["gz", "plain", "json"] {
        let query = LokiQuery::new(&url, None);
        let selector = format!("{{job=\"{u}-{job}\"}}");
        query.wait_entries(&selector, total, WAIT);
        // What came late would be a repeat.
        std::thread::sleep(Duration::from_secs(1));
        let entries = query.entries(&selector);
        assert_eq!(entries.len(), total, "{job}: every line once");
        for name in &names {
            for (stream, prefix, count) in [("stdout", "n", n), ("stderr", "e", n / 4)] {
                let of: Vec<&Entry> = entries
                    .iter()
                    .filter(|e| e.labels["container"] == *name && e.labels["stream"] == stream)
                    .collect();
                let job_label = format!("{u}-{job}");
                for e in &of {
                    assert_eq!(
                        own_labels(e),
                        [
                            ("container", name.as_str()),
                            ("job", job_label.as_str()),
                            ("stream", stream)
                        ]
                    );
                }
                let messages: Vec<String> = of.iter().map(|e| message(job, e)).collect();
                let want: Vec<String> = (1..=count).map(|i| format!("{prefix} {i}")).collect();
                assert_eq!(messages, want, "{job} {name} {stream}: once, in order");
            }
        }
        eprintln!("real Loki, {job}: {total} lines of 3 containers read back, each once");
    }
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
    for sink in ["loki-0", "loki-1", "loki-2"] {
        let taken = sink_metric(&cap, "log_capturer_sink_records_total", sink);
        assert_eq!(taken, total as f64, "{sink}");
    }
}

/// The record's message: the line itself, or for `line_format = "json"` the record the
/// line holds (checked against the entry's labels).
fn message(job: &str, e: &Entry) -> String {
    if job != "json" {
        return e.line.clone();
    }
    let record: Value = serde_json::from_str(&e.line).expect("a JSON record per line");
    assert_eq!(record["container_name"], e.labels["container"].as_str());
    assert_eq!(record["stream"], e.labels["stream"].as_str());
    assert!(record["time"].is_string() && record["container_id"].is_string());
    record["message"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_tenant_gets_its_lines_and_no_other_tenant_sees_them() {
    let _daemon = shared_daemon();
    let url = env("LOKI_MT_URL");
    let u = unique("lk-tenant");
    let tenant = format!("team-{u}");
    let sink = loki_sink(
        &url,
        &format!("job = \"{u}\""),
        &format!("tenant_id = \"{tenant}\""),
    );
    let cap = Capturer::start(&u, &sink);
    let c = Container::run(&u, &[], "for i in $(seq 1 300); do echo \"n $i\"; done");
    c.wait();
    let selector = format!("{{job=\"{u}\"}}");
    let mine = LokiQuery::new(&url, Some(&tenant)).wait_entries(&selector, 300, WAIT);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(once(&counts(&mine), "n", 300), (0, 0));
    let other = LokiQuery::new(&url, Some(&format!("other-{u}")));
    assert_eq!(
        other.entries(&selector).len(),
        0,
        "another tenant sees none"
    );
    let (status, body) =
        LokiQuery::new(&url, None).get("/loki/api/v1/query_range", &[("query", selector.clone())]);
    assert_eq!(status, 401, "no tenant, no answer: {body}");
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
    eprintln!("real Loki, tenant {tenant}: 300 of 300 lines; 0 seen by another tenant");
}

/// A Loki of the test's own is stopped (SIGTERM) while two containers write, and started
/// again on the same data and ports: the capturer retries until it is back, and every line
/// is in Loki once.
#[test]
fn a_loki_restart_under_load_loses_nothing() {
    let _daemon = shared_daemon();
    let mut loki = OwnLoki::start();
    let u = unique("lk-restart");
    let labels = format!("job = \"{u}\", container = \"{{container_name}}\"");
    let sink = loki_sink(&loki.url(), &labels, "");
    let cap = Capturer::start(&format!("{u}-c*"), &sink);
    let n = 5000;
    // About 500 lines a second each, for about 10 s.
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"n $i\"; \
         if [ $((i % 100)) -eq 0 ]; then sleep 0.2; fi; done"
    );
    let names: Vec<String> = (0..2).map(|i| format!("{u}-c{i}")).collect();
    let containers: Vec<Container> = names
        .iter()
        .map(|name| Container::run(name, &[], &script))
        .collect();
    let query = LokiQuery::new(&loki.url(), None);
    let selector = format!("{{job=\"{u}\"}}");
    let before = query.wait_entries(&selector, 1000, WAIT).len();
    let down = Instant::now();
    loki.stop();
    let stopped = down.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    loki.launch();
    let outage = down.elapsed();
    let back = Instant::now();
    containers.iter().for_each(Container::wait);
    let written: Vec<String> = containers
        .iter()
        .map(|c| docker(&["inspect", "-f", "{{.State.FinishedAt}}", &c.id]))
        .collect();
    query.wait_entries(&selector, 2 * n, WAIT);
    let recovered = back.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let entries = query.entries(&selector);
    let retries = sink_metric(&cap, "log_capturer_sink_retries_total", "loki-0");
    eprintln!(
        "real Loki restart: {before} lines in before SIGTERM; stop took {stopped:?}, down \
         {outage:?} (until /ready); every line in {recovered:?} after it was back; {retries} \
         retries; {} entries read back; containers finished at {written:?}",
        entries.len()
    );
    for name in &names {
        let of: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.labels["container"] == *name)
            .collect();
        assert_eq!(once(&counts(of), "n", n), (0, 0), "{name}");
    }
    assert_eq!(entries.len(), 2 * n);
    assert!(retries >= 1.0, "the outage was retried");
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
    let file = cap.records();
    assert_eq!(file.len(), 2 * n, "the file sink too");
}

/// The real Loki behind mutual TLS (a rustls proxy requiring a client certificate of a
/// CA generated here, tests/tls_support.rs): the sink's `tls` table reaches it and every
/// line arrives once.
#[test]
fn mutual_tls_to_a_real_loki_delivers_every_line_once() {
    use crate::tls_support::{Pki, ServerCert, TlsProxy};
    let _daemon = shared_daemon();
    let url = env("LOKI_URL");
    let port = url.rsplit(':').next().and_then(|p| p.parse().ok());
    let pki = Pki::new("loki-mtls");
    let names = &["127.0.0.1", "localhost"];
    let server = pki.server(
        ServerCert {
            names,
            expired: false,
        },
        Some(&pki),
    );
    let proxy = TlsProxy::start(port.expect("LOKI_URL's port"), server);
    let (cert, key) = pki.client("capturer");
    let u = unique("lk-mtls");
    let tls = format!(
        "tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}",
        pki.ca_file().display(),
        cert.display(),
        key.display()
    );
    let _cap = Capturer::start(
        &u,
        &loki_sink(&proxy.url(), &format!("job = \"{u}\""), &tls),
    );
    let n = 500;
    Container::run(
        &u,
        &[],
        &format!("for i in $(seq 1 {n}); do echo \"n $i\"; done"),
    )
    .wait();
    let query = LokiQuery::new(&url, None);
    let entries = query.wait_entries(&format!("{{job=\"{u}\"}}"), n, WAIT);
    assert_eq!(once(&counts(&entries), "n", n), (0, 0));
    assert!(proxy.refused().is_empty(), "{:?}", proxy.refused());
}
