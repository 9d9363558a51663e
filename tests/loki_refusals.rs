//! What a real Loki refuses, and what the sink does about it (README, Sinks): entries too
//! far behind in their stream and lines over `max_line_size` are refused with a 400 that
//! keeps the rest of the push, so only the refused records are counted as rejected and
//! nothing else is lost or sent again; a rate limit is a 429, retried until every line is
//! in; a push larger than the burst is refused for ever, so the sink cuts its pushes down
//! until they pass. The limits are those of
//! tests/loki/loki.yaml and tests/loki/overrides.yaml (tenants `short-lines`, `tiny-rate`).

use std::time::{Duration, Instant};

use crate::loki_util::{counts, env, now_ns, once, sink_metric, Entry, LokiQuery};
use crate::util::{docker, shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(120);

fn loki_sink(url: &str, job: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"loki\"\nurl = \"{url}\"\nlabels = {{ job = \"{job}\" }}\n{extra}\n"
    )
}

/// A script that prints `prefix 1` .. `prefix n`, then stays up until stopped.
fn print_then_stay(prefix: &str, n: usize) -> String {
    format!("trap 'exit 0' TERM; for i in $(seq 1 {n}); do echo \"{prefix} $i\"; done; sleep 600 & wait")
}

/// Waits until the Loki sink `loki-0` has settled `n` records (taken or rejected).
fn wait_settled(cap: &Capturer, n: usize) -> (f64, f64) {
    wait_for(
        WAIT,
        &format!("{n} records taken or rejected by loki-0"),
        || {
            let taken = sink_metric(cap, "log_capturer_sink_records_total", "loki-0");
            let rejected = sink_metric(cap, "log_capturer_sink_rejected_records_total", "loki-0");
            (taken + rejected >= n as f64).then_some((taken, rejected))
        },
    )
}

/// Two containers in one stream (the labels name only the job): the newer one's lines go
/// first, then a restart reads the older one's backlog, more than half of Loki's
/// `max_chunk_age` (20 s here) behind the stream's newest entry. Loki refuses those lines
/// and keeps the others of the push (the older container's later lines, written while
/// the capturer was down, read with the backlog): only the refused ones are counted.
#[test]
fn entries_too_far_behind_are_counted_as_rejected_and_the_rest_of_the_push_is_kept() {
    let _daemon = shared_daemon();
    let url = env("LOKI_URL");
    let u = unique("lk-behind");
    // On SIGUSR1 it prints `late 1` .. `late 50`, and stays up.
    let script = format!(
        "trap 'for i in $(seq 1 50); do echo \"late $i\"; done' USR1; {}; sleep 600 & wait",
        print_then_stay("old", 100)
    );
    let old = Container::run(&format!("{u}-old"), &[], &script);
    wait_for(WAIT, "the old lines in the container's log", || {
        (docker(&["logs", &old.id]).lines().count() >= 100).then_some(())
    });
    // Half of max_chunk_age (20 s), and a margin.
    std::thread::sleep(Duration::from_secs(13));
    let _new = Container::run(&format!("{u}-new"), &[], &print_then_stay("new", 100));
    let extra = format!(
        "[containers]\ninitial = \"beginning\"\n[pipeline]\nbatch_timeout = \"2s\"\n{}",
        loki_sink(&url, &u, "")
    );
    let mut cap = Capturer::start(&format!("{u}-new"), &extra);
    let query = LokiQuery::new(&url, None);
    let selector = format!("{{job=\"{u}\"}}");
    query.wait_entries(&selector, 100, WAIT);
    assert!(cap.terminate(Duration::from_secs(30)).0.success());
    docker(&["kill", "-s", "USR1", &old.id]);
    wait_for(WAIT, "the late lines in the container's log", || {
        (docker(&["logs", &old.id]).lines().count() >= 150).then_some(())
    });
    // The second run follows both.
    let config = cap.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("the config");
    let text = text.replace(&format!("[\"{u}-new\"]"), &format!("[\"{u}-*\"]"));
    std::fs::write(&config, text).expect("rewrite the config");
    cap.restart();
    let (taken, rejected) = wait_settled(&cap, 150);
    std::thread::sleep(Duration::from_secs(1));
    let seen = counts(&query.entries(&selector));
    let log = cap.log();
    eprintln!(
        "real Loki, too far behind: second run sent 150 (100 old, 50 late); Loki kept {} \
         lines of the stream in all; metrics: taken {taken}, rejected {rejected}; pushes refused: \
         {:?}",
        seen.values().sum::<usize>(),
        pushes_refused(&log)
    );
    assert_eq!(once(&seen, "new", 100), (0, 0));
    assert_eq!(
        once(&seen, "late", 50),
        (0, 0),
        "the rest of the push is kept"
    );
    assert_eq!(
        once(&seen, "old", 100),
        (100, 0),
        "the old backlog is refused"
    );
    assert_eq!((taken, rejected), (50.0, 100.0));
    assert!(
        log.contains("entry too far behind"),
        "the reason is logged:\n{log}"
    );
}

#[test]
fn lines_over_the_size_limit_are_counted_as_rejected_and_the_rest_is_kept() {
    let _daemon = shared_daemon();
    let url = env("LOKI_MT_URL");
    let u = unique("lk-long");
    let sink = loki_sink(&url, &u, "tenant_id = \"short-lines\"");
    let cap = Capturer::start(&u, &sink);
    // Every 30th line is 300 bytes; the tenant's max_line_size is 200.
    let c = Container::run(
        &u,
        &[],
        "pad=x; while [ ${#pad} -lt 300 ]; do pad=\"$pad$pad\"; done; \
         for i in $(seq 1 300); do if [ $((i % 30)) -eq 0 ]; then echo \"long $i $pad\"; \
         else echo \"n $i\"; fi; done",
    );
    c.wait();
    let (taken, rejected) = wait_settled(&cap, 300);
    std::thread::sleep(Duration::from_secs(1));
    let query = LokiQuery::new(&url, Some("short-lines"));
    let entries = query.entries(&format!("{{job=\"{u}\"}}"));
    let seen = counts(&entries);
    eprintln!(
        "real Loki, line too long: 300 sent (10 of 300 bytes, limit 200); Loki kept {}; \
         metrics: taken {taken}, rejected {rejected}",
        entries.len()
    );
    assert_eq!(entries.len(), 290);
    let kept: Vec<usize> = (1..=300).filter(|i| i % 30 != 0).collect();
    assert!(kept.iter().all(|i| seen.get(&format!("n {i}")) == Some(&1)));
    assert!(!entries.iter().any(|e| e.line.starts_with("long ")));
    assert_eq!((taken, rejected), (290.0, 10.0));
    assert!(cap.log().contains("max entry size"), "the reason is logged");
}

/// What the dispatcher logged of each refused push, e.g. `78 of 128 records`.
fn pushes_refused(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| {
            l.split_once("sink loki-0: ")?
                .1
                .split_once(" rejected and dropped")
        })
        .map(|(count, _)| count)
        .collect()
}

/// The first two words of a padded line (`n 17 xxxx...` -> `n 17`).
fn head(e: &Entry) -> Entry {
    let line = e.line.split(' ').take(2).collect::<Vec<_>>().join(" ");
    Entry { line, ..e.clone() }
}

#[test]
fn a_rate_limit_is_retried_until_every_line_is_in_and_a_push_over_the_burst_never_is() {
    let _daemon = shared_daemon();
    let url = env("LOKI_MT_URL");
    let u = unique("lk-rate");
    // Batches well under the tenant's burst (40 KB at 20 KB/s).
    let extra = format!(
        "[pipeline]\nbatch_bytes = \"16KiB\"\n{}",
        loki_sink(&url, &u, "tenant_id = \"tiny-rate\"")
    );
    let cap = Capturer::start(&u, &extra);
    let n = 1500;
    let c = Container::run(
        &u,
        &[],
        &format!(
            "pad=x; while [ ${{#pad}} -lt 90 ]; do pad=\"$pad$pad\"; done; \
             for i in $(seq 1 {n}); do echo \"n $i $pad\"; done"
        ),
    );
    c.wait();
    let started = Instant::now();
    let query = LokiQuery::new(&url, Some("tiny-rate"));
    let selector = format!("{{job=\"{u}\"}}");
    query.wait_entries(&selector, n, WAIT);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let entries: Vec<Entry> = query.entries(&selector).iter().map(head).collect();
    let retries = sink_metric(&cap, "log_capturer_sink_retries_total", "loki-0");
    eprintln!(
        "real Loki, rate limit 20 KB/s: {n} lines of ~130 bytes all in {took:?} after the \
         container exited, {retries} retries (429), {} entries read back",
        entries.len()
    );
    assert_eq!(once(&counts(&entries), "n", n), (0, 0));
    assert_eq!(entries.len(), n);
    assert!(retries >= 1.0, "the 429s were retried");
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
    let log = cap.log();
    assert!(log.contains("HTTP 429") && log.contains("ingestion rate limit exceeded"));
    // A push larger than the burst is refused however long it waits: the bucket never
    // holds that much (why the sink cuts its pushes down at each 429; see the next test).
    let big = over_the_burst(&u);
    let first = query.push(&big);
    std::thread::sleep(Duration::from_secs(3));
    let again = query.push(&big);
    eprintln!("real Loki, a 50 KB push with a 40 KB burst: {first:?}, 3 s later {again:?}");
    for (status, body) in [first, again] {
        assert_eq!(status, 429);
        assert!(
            body.contains("ingestion rate limit exceeded for user tiny-rate"),
            "{body}"
        );
    }
}

/// A batch of 1,500 lines (about 200 KB) against a tenant whose burst is 40 KB: Loki
/// refuses that push whole for ever (429); the sink halves its pushes at each 429 until
/// they pass, and every line arrives once.
#[test]
fn a_batch_over_the_burst_goes_in_parts_and_every_line_arrives_once() {
    let _daemon = shared_daemon();
    let url = env("LOKI_MT_URL");
    let u = unique("lk-burst");
    let n = 1500;
    let c = Container::run(
        &u,
        &[],
        &format!(
            "trap 'exit 0' TERM; pad=x; while [ ${{#pad}} -lt 90 ]; do pad=\"$pad$pad\"; done; \
             for i in $(seq 1 {n}); do echo \"n $i $pad\"; done; sleep 600 & wait"
        ),
    );
    wait_for(WAIT, "the container's lines", || {
        let logs = docker(&["logs", "--tail", "1", &c.id]);
        logs.contains(&format!("n {n} ")).then_some(())
    });
    // Started after the lines were written, with a long batch timeout: one batch of all.
    let extra = format!(
        "[containers]\ninitial = \"beginning\"\n[pipeline]\nbatch_timeout = \"3s\"\n{}",
        loki_sink(&url, &u, "tenant_id = \"small-burst\"")
    );
    let started = Instant::now();
    let cap = Capturer::start(&u, &extra);
    let query = LokiQuery::new(&url, Some("small-burst"));
    let selector = format!("{{job=\"{u}\"}}");
    query.wait_entries(&selector, n, WAIT);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let entries: Vec<Entry> = query.entries(&selector).iter().map(head).collect();
    let retries = sink_metric(&cap, "log_capturer_sink_retries_total", "loki-0");
    let log = cap.log();
    eprintln!(
        "real Loki, burst 40 KB: {n} lines (~200 KB in one batch) all in {took:?} in parts, \
         {retries} retries; {} entries read back",
        entries.len()
    );
    assert_eq!(once(&counts(&entries), "n", n), (0, 0));
    assert_eq!(entries.len(), n);
    assert!(
        log.contains("HTTP 429"),
        "the whole batch was refused first: {log}"
    );
    assert!(
        log.contains("pushes are cut down"),
        "then pushed in parts: {log}"
    );
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
}

/// A push of 500 lines of 100 bytes (50 KB of lines).
fn over_the_burst(u: &str) -> Vec<u8> {
    let now = now_ns();
    let values: Vec<serde_json::Value> = (0..500u128)
        .map(|i| serde_json::json!([(now + i).to_string(), "y".repeat(100)]))
        .collect();
    let push =
        serde_json::json!({"streams": [{"stream": {"job": format!("{u}-big")}, "values": values}]});
    serde_json::to_vec(&push).expect("JSON")
}
