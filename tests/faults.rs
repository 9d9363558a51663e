//! Faults of the Docker daemon that a real one will not produce on demand, played by the
//! fake daemon (`fake_daemon.rs`) against the real capturer binary: hangs, torn and absurd
//! frames, garbage, 500s, bad JSON, resets, a drip. For each: no panic, bounded memory,
//! the error counted in /metrics, reconnects with backoff (not a loop), /health where it
//! applies, the good lines before the fault delivered once, and SIGTERM still exits 0
//! (within `STOP_HANG`, which only catches a hang). Each test has its own fake daemon and
//! capturer; no real Docker is used. Every check of a test is run and the failures are
//! reported together.

use std::time::{Duration, Instant};

use log_capturer::capture::timestamp::Timestamp;
use serde_json::Value;

use crate::fake_daemon::{
    chunk_wire, frame, log_line, Api, FakeContainer, FakeDaemon, Request, Step,
};
use crate::util::{http_get, wait_for, Capturer};

/// RSS the capturer must stay under, whatever the daemon sends.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// How long a persistently failing stream is watched for its retry pattern.
const WATCH: Duration = Duration::from_secs(5);
/// A stop takes 2 s at most (reads time out within 1 s); 5x that is a hang.
const STOP_HANG: Duration = Duration::from_secs(10);

/// The capturer (dropped first) on its own fake daemon. Its checks are judged by
/// [`finish`](Self::finish), or on Drop if a test returns without calling it.
struct Fixture {
    cap: Capturer,
    fake: FakeDaemon,
    failures: Vec<String>,
    /// Highest RSS seen while watching.
    peak_rss_kib: std::cell::Cell<u64>,
    /// `report` ran (from `finish` or Drop).
    reported: bool,
}

impl Fixture {
    fn start(fake: FakeDaemon) -> Fixture {
        let cap = Capturer::spawn("*", &fake.docker_toml());
        wait_for(Duration::from_secs(15), "capturer /health answers", || {
            http_get(cap.port, "/health")
        });
        Fixture {
            cap,
            fake,
            failures: Vec::new(),
            peak_rss_kib: std::cell::Cell::new(0),
            reported: false,
        }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    fn status(&self) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{}/status", self.cap.pid())).ok()
    }

    fn rss_kib(&self) -> u64 {
        let status = self.status().unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmRSS:"));
        line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU seconds used over the next `d`.
    fn cpu_over(&self, d: Duration) -> f64 {
        let before = self.cap.cpu_secs();
        std::thread::sleep(d);
        self.cap.cpu_secs() - before
    }

    /// `log_capturer_docker_http_errors_total{endpoint="<endpoint>"}`.
    fn errors(&self, endpoint: &str) -> f64 {
        labelled(
            &self.cap.metrics(),
            "log_capturer_docker_http_errors_total",
            &format!("endpoint=\"{endpoint}\""),
        )
    }

    fn metric(&self, name: &str) -> f64 {
        self.cap.metric(name)
    }

    fn health(&self) -> (u16, Value) {
        let (status, body) = http_get(self.cap.port, "/health").unwrap_or((0, String::new()));
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn messages(&self) -> Vec<String> {
        self.cap
            .records()
            .iter()
            .filter_map(|r| r["message"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits (up to `timeout`) for a record with this message.
    fn wait_message(&mut self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.messages().iter().any(|m| m == text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.check(
            false,
            format!("line {text:?} not delivered within {timeout:?}"),
        );
        false
    }

    /// The line was delivered, and only once.
    fn delivered_once(&mut self, text: &str, timeout: Duration) {
        if self.wait_message(text, timeout) {
            let n = self.messages().iter().filter(|m| *m == text).count();
            self.check(n == 1, format!("line {text:?} delivered {n} times"));
        }
    }

    fn never_delivered(&mut self, pred: impl Fn(&str) -> bool, what: &str) {
        let bad: Vec<String> = self.messages().into_iter().filter(|m| pred(m)).collect();
        self.check(bad.is_empty(), format!("{what} delivered: {bad:?}"));
    }

    /// Waits until `api` was first requested, then `WATCH` more (sampling RSS); returns
    /// the requests of that window.
    fn watch(&self, api: Api) -> Vec<Request> {
        let first = wait_for(Duration::from_secs(15), "the first request", || {
            self.fake.requests_to(api).first().map(|r| r.at)
        });
        while Instant::now() < first + WATCH {
            self.peak_rss_kib
                .set(self.peak_rss_kib.get().max(self.rss_kib()));
            std::thread::sleep(Duration::from_millis(100));
        }
        self.fake
            .requests_to(api)
            .into_iter()
            .filter(|r| r.at <= first + WATCH)
            .collect()
    }

    /// A persistently failing request is retried, but with growing delays: fewer than 50
    /// in `WATCH`, and the last gaps at least 400 ms (the first retry comes after 50-250 ms).
    fn backoff(&mut self, reqs: &[Request], what: &str) {
        let gaps: Vec<u128> = reqs
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at).as_millis())
            .collect();
        eprintln!(
            "{what}: {} requests in {WATCH:?}, gaps (ms) {gaps:?}",
            reqs.len()
        );
        self.check(reqs.len() >= 2, format!("{what}: never retried ({gaps:?})"));
        self.check(
            reqs.len() < 50,
            format!("{what}: {} requests in {WATCH:?}: a retry loop", reqs.len()),
        );
        let last = gaps.iter().rev().take(2).max().copied().unwrap_or(0);
        self.check(
            last >= 400,
            format!("{what}: retried without backoff, gaps (ms) {gaps:?}"),
        );
    }

    /// Alive, no panic, memory bounded, only GET sent.
    fn sane(&mut self) {
        let exited = self.cap.child.try_wait().ok().flatten();
        self.check(exited.is_none(), format!("capturer exited: {exited:?}"));
        let log = self.cap.log();
        self.check(!log.contains("panicked"), "capturer panicked (see its log)");
        let rss = self.rss_kib().max(self.peak_rss_kib.get());
        self.check(
            rss < RSS_LIMIT_KIB,
            format!(
                "capturer RSS {} MiB >= {} MiB",
                rss / 1024,
                RSS_LIMIT_KIB / 1024
            ),
        );
        let methods: Vec<String> = self
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        self.check(methods.is_empty(), format!("non-GET requests: {methods:?}"));
    }

    /// Judges the test now (Drop would otherwise).
    fn finish(mut self) {
        self.report();
    }

    /// SIGTERM: exit 0, no hang; then every failure is reported, with the capturer's log.
    fn report(&mut self) {
        self.reported = true;
        self.sane();
        let (status, health) = self.health();
        eprintln!(
            "{}: errors logs={} events={} inspect={}; requests logs={} events={} list={} \
             inspect={}; /health {status} {}; RSS {} KiB",
            std::thread::current().name().unwrap_or("?"),
            self.errors("logs"),
            self.errors("events"),
            self.errors("inspect"),
            self.fake.count(Api::Logs),
            self.fake.count(Api::Events),
            self.fake.count(Api::List),
            self.fake.count(Api::Inspect),
            health["reasons"],
            self.rss_kib().max(self.peak_rss_kib.get()),
        );
        let (status, took) = self.cap.terminate(STOP_HANG * 3);
        self.check(
            status.success() && took <= STOP_HANG,
            format!("SIGTERM: {status} after {took:?} (want exit 0, no hang)"),
        );
        let log = self.cap.log();
        self.check(!log.contains("panicked"), "capturer panicked (see its log)");
        if !self.failures.is_empty() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{} check(s) failed:\n  - {}\ncapturer log (last 40 lines):\n{}",
                self.failures.len(),
                self.failures.join("\n  - "),
                tail.join("\n")
            );
        }
    }
}

/// A test that returns without `finish` is judged all the same. While a panic unwinds (a
/// failed assertion of the test itself), the checks failed so far are printed, not raised:
/// a second panic would abort the test binary.
impl Drop for Fixture {
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        if std::thread::panicking() {
            if !self.failures.is_empty() {
                eprintln!(
                    "also failed before the panic:\n  - {}",
                    self.failures.join("\n  - ")
                );
            }
            return;
        }
        self.report();
    }
}

/// A labelled sample of Prometheus text, e.g. `name{endpoint="logs"}`.
fn labelled(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .sum()
}

/// Frame times: now, plus `ms`.
fn at(base: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_nanos(base.as_nanos() + ms * 1_000_000)
}

fn json_error(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

/// Deterministic noise (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// (a) The logs request gets no response headers at all.
#[test]
fn logs_without_response_headers() {
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, |_| vec![Step::Hold]);
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Logs);
    f.backoff(&reqs, "logs without headers");
    let errors = f.errors("logs");
    f.check(errors >= 2.0, format!("errors_total{{logs}} = {errors}"));
    let streams = f.cap.streams();
    let reconnects = streams
        .first()
        .and_then(|s| s["reconnects"].as_u64())
        .unwrap_or(0);
    f.check(
        reconnects >= 1,
        format!("/streams shows no reconnects: {streams:?}"),
    );
    f.finish();
}

/// (b) The body hangs after one good frame, in the middle of the next one.
#[test]
fn logs_hang_mid_body() {
    let base = Timestamp::now();
    let good = log_line(1, at(base, 0), "good before hang");
    let next = log_line(1, at(base, 1), "never completed");
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, move |_| {
        let mut body = good.clone();
        body.extend_from_slice(&next[..12]);
        vec![Step::Head(200, None), Step::Chunk(body), Step::Hold]
    });
    let mut f = Fixture::start(fake);
    f.delivered_once("good before hang", Duration::from_secs(10));
    let cpu = f.cpu_over(Duration::from_secs(2));
    f.check(
        cpu < 0.5,
        format!("{cpu:.2} CPU s in 2 s on a hung stream: spinning"),
    );
    f.never_delivered(|m| m.contains("never"), "a torn frame");
    let logs = f.fake.count(Api::Logs);
    f.check(
        logs == 1,
        format!("{logs} logs requests: a quiet stream is not an error"),
    );
    let errors = f.errors("logs");
    f.check(
        errors == 0.0,
        format!("errors_total{{logs}} = {errors} on a quiet stream"),
    );
    f.finish();
}

/// (c) A frame cut at EOF: the header says 100 bytes, 10 come, then a clean chunked end.
#[test]
fn logs_frame_cut_at_eof() {
    let base = Timestamp::now();
    let mut body = log_line(1, at(base, 0), "good before cut");
    body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 100]);
    body.extend_from_slice(b"2026-11-26");
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, move |_| {
        vec![Step::Head(200, None), Step::Chunk(body.clone()), Step::End]
    });
    let mut f = Fixture::start(fake);
    f.delivered_once("good before cut", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    f.never_delivered(|m| m.contains("2026-11-26"), "the torn frame");
    let logs = f.fake.count(Api::Logs);
    f.check(logs < 50, format!("{logs} logs requests in ~2 s: a loop"));
    let errors = f.errors("logs");
    f.check(
        errors >= 1.0,
        format!("errors_total{{logs}} = {errors}: a body ending inside a frame is not counted"),
    );
    f.finish();
}

/// (d) A frame length of 2^31 after a good frame.
#[test]
fn logs_absurd_frame_length() {
    let base = Timestamp::now();
    let mut body = log_line(1, at(base, 0), "good before absurd");
    body.extend_from_slice(&[1, 0, 0, 0, 0x80, 0, 0, 0]);
    body.extend_from_slice(b"xxxx");
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, move |_| {
        vec![Step::Head(200, None), Step::Chunk(body.clone()), Step::Hold]
    });
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Logs);
    f.delivered_once("good before absurd", Duration::from_secs(5));
    f.backoff(&reqs, "logs with a 2^31-byte frame");
    let errors = f.errors("logs");
    f.check(
        errors >= 1.0,
        format!("errors_total{{logs}} = {errors}: the corrupt stream is not counted"),
    );
    let dups = f.metric("log_capturer_duplicates_skipped_total");
    f.check(
        dups >= 1.0,
        format!("duplicates_skipped_total = {dups} after reconnects"),
    );
    f.finish();
}

/// (e) Garbage bodies: random bytes whose first byte (2) says stdcopy, with a nonsense
/// length; random bytes after "HTTP garbage \xff\xfe", sniffed as TTY; and a good frame
/// followed by noise.
#[test]
fn logs_garbage_bodies() {
    let base = Timestamp::now();
    let fake = FakeDaemon::start();
    let mut stdcopy = noise(7, 64 * 1024);
    stdcopy[0] = 2;
    stdcopy[4] = stdcopy[4].max(1); // a length of 16 MiB or more
    let mut tty = b"HTTP garbage \xff\xfe".to_vec();
    tty.extend(noise(11, 64 * 1024));
    let mut after_good = log_line(2, at(base, 0), "good before noise");
    after_good.extend(noise(13, 4096));
    let bodies = [
        ("junk-stdcopy", stdcopy),
        ("junk-tty", tty),
        ("junk-after-good", after_good),
    ];
    for (name, body) in &bodies {
        fake.add(FakeContainer::running(name).with_logs(body.clone()));
    }
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Logs);
    f.delivered_once("good before noise", Duration::from_secs(5));
    for (name, _) in &bodies {
        let id = crate::fake_daemon::fake_id(name);
        let mine: Vec<Request> = reqs
            .iter()
            .filter(|r| r.id.as_ref() == Some(&id))
            .cloned()
            .collect();
        eprintln!("{name}: {} logs requests", mine.len());
        f.check(
            mine.len() < 50,
            format!("{name}: {} logs requests: a loop", mine.len()),
        );
        let recs = f.cap.records_of(name).len();
        let want = usize::from(*name == "junk-after-good");
        f.check(
            recs == want,
            format!("{name}: {recs} records made of garbage"),
        );
    }
    let errors = f.errors("logs");
    f.check(
        errors >= 2.0,
        format!("errors_total{{logs}} = {errors}: corrupt stdcopy streams not counted"),
    );
    let cpu = f.cpu_over(Duration::from_secs(2));
    f.check(
        cpu < 0.5,
        format!("{cpu:.2} CPU s in 2 s after the garbage"),
    );
    f.finish();
}

/// (e) A flood of bytes with no space and no newline, sniffed as TTY (its first byte is
/// not 0..=3): a bounded decoder cuts it into 16 KiB messages and skips them; it must
/// neither buffer it all nor rescan the buffer on every read.
#[test]
fn logs_tty_garbage_flood() {
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    let chunk: Vec<u8> = b"HTTP-garbage\xff\xfe"
        .iter()
        .copied()
        .cycle()
        .take(32 * 1024)
        .collect();
    let total = 16 << 20;
    fake.on(Api::Logs, move |_| {
        vec![
            Step::Head(200, None),
            Step::Flood {
                chunk: chunk.clone(),
                total,
            },
            Step::Hold,
        ]
    });
    let mut f = Fixture::start(fake);
    wait_for(Duration::from_secs(15), "the logs request", || {
        (f.fake.count(Api::Logs) > 0).then_some(())
    });
    // 16 MiB is read and dropped in well under 3 s by a linear decoder.
    std::thread::sleep(Duration::from_secs(3));
    let cpu = f.cpu_over(Duration::from_secs(3));
    let rss = f.rss_kib();
    eprintln!("tty flood: {cpu:.2} CPU s in 3 s, RSS {} MiB", rss / 1024);
    f.check(
        cpu < 1.0,
        format!(
            "{cpu:.2} CPU s in 3 s, RSS {} MiB, 3 s after a 16 MiB flood without newline: \
             the TTY decoder rescans an ever-growing buffer",
            rss / 1024
        ),
    );
    f.finish();
}

/// (f) The logs request answers HTTP 500 with Docker's JSON error.
#[test]
fn logs_http_500() {
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, |_| {
        vec![Step::Respond(
            500,
            json_error("fake: the log driver exploded"),
        )]
    });
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Logs);
    f.backoff(&reqs, "logs answering 500");
    let errors = f.errors("logs");
    f.check(errors >= 2.0, format!("errors_total{{logs}} = {errors}"));
    let log = f.cap.log();
    f.check(
        log.contains("the log driver exploded"),
        "the daemon's error message is not logged",
    );
    let (status, health) = f.health();
    f.check(
        status == 200,
        format!("/health {status} {health}: one failing stream is not a daemon failure"),
    );
    f.finish();
}

/// (g) Inspect answers invalid JSON (twice, then valid): counted, and the container is
/// followed once inspect works again.
#[test]
fn inspect_invalid_json() {
    let base = Timestamp::now();
    let fake = FakeDaemon::start();
    let c = FakeContainer::running("fake-1").with_logs(log_line(1, at(base, 0), "after inspect"));
    fake.add(c);
    fake.on(Api::Inspect, |call| {
        if call.nth < 2 {
            vec![Step::Respond(200, "{\"Id\": not json".into())]
        } else {
            crate::fake_daemon::default_steps(call)
        }
    });
    let mut f = Fixture::start(fake);
    wait_for(Duration::from_secs(15), "an inspect request", || {
        (f.fake.count(Api::Inspect) > 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let errors = f.errors("inspect");
    f.check(errors >= 1.0, format!("errors_total{{inspect}} = {errors}"));
    f.delivered_once("after inspect", Duration::from_secs(10));
    let inspects = f.fake.count(Api::Inspect);
    f.check(
        inspects < 50,
        format!("{inspects} inspect requests: a loop"),
    );
    eprintln!("inspect requests: {inspects}");
    f.finish();
}

/// (h) The events stream sends invalid JSON lines, then a valid start event.
#[test]
fn events_invalid_json_then_valid() {
    let base = Timestamp::now();
    let fake = FakeDaemon::start();
    let c = FakeContainer::running("fake-ev")
        .with_logs(log_line(1, at(base, 0), "after bad events"))
        .unlisted();
    let start = c.start_event();
    fake.add(c);
    let mut f = Fixture::start(fake);
    wait_for(Duration::from_secs(15), "the events request", || {
        (f.fake.count(Api::Events) > 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    for junk in [
        "this is not json",
        "{\"Type\":\"container\",\"Action\":",
        "\u{fffd}\u{fffd} garbage",
        "[1,2,3]",
        "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"\"}}",
    ] {
        f.fake.emit(junk);
    }
    f.fake.emit(&"x".repeat(3 << 20));
    f.fake.emit(&start);
    f.delivered_once("after bad events", Duration::from_secs(10));
    let events = f.fake.count(Api::Events);
    f.check(
        events == 1,
        format!("{events} events requests: bad lines broke the stream"),
    );
    let empty_id = f
        .fake
        .requests_to(Api::Logs)
        .into_iter()
        .find(|r| r.id.as_deref() == Some(""));
    f.check(
        empty_id.is_none(),
        format!("a start event without an ID was followed: {empty_id:?}"),
    );
    let (status, health) = f.health();
    f.check(status == 200, format!("/health {status} {health}"));
    let errors = f.errors("events");
    f.check(
        errors >= 1.0,
        format!("errors_total{{events}} = {errors}: undecodable events are not counted"),
    );
    f.finish();
}

/// (i) The logs connection is reset mid-body (no chunked terminator) after a good frame.
#[test]
fn logs_reset_mid_body() {
    let base = Timestamp::now();
    let good = log_line(1, at(base, 0), "good before reset");
    let torn = log_line(1, at(base, 1), "torn by the reset");
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, move |_| {
        let mut body = good.clone();
        body.extend_from_slice(&torn[..torn.len() / 2]);
        vec![Step::Head(200, None), Step::Chunk(body), Step::Close]
    });
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Logs);
    f.delivered_once("good before reset", Duration::from_secs(5));
    f.never_delivered(|m| m.contains("torn"), "a frame cut by the reset");
    f.backoff(&reqs, "logs reset mid-body");
    let errors = f.errors("logs");
    f.check(errors >= 2.0, format!("errors_total{{logs}} = {errors}"));
    f.finish();
}

/// (i) The events connection is reset right after its headers, every time.
#[test]
fn events_reset_mid_body() {
    let fake = FakeDaemon::start();
    fake.on(Api::Events, |_| {
        vec![Step::Head(200, Some("application/json")), Step::Close]
    });
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Events);
    f.backoff(&reqs, "events reset mid-body");
    let errors = f.errors("events");
    f.check(errors >= 2.0, format!("errors_total{{events}} = {errors}"));
    let (status, health) = f.health();
    let reasons = health["reasons"].to_string();
    f.check(
        status == 503 && reasons.contains("events stream is down"),
        format!("/health {status} {health} while events keep failing"),
    );
    let lists = f.fake.count(Api::List);
    eprintln!("container lists during the events resets: {lists}");
    f.finish();
}

/// Events answer HTTP 500: /health says the events stream is down (and, once pinged, that
/// the daemon itself answers); retries back off.
#[test]
fn events_http_500() {
    let fake = FakeDaemon::start();
    fake.on(Api::Events, |_| {
        vec![Step::Respond(500, json_error("fake: events broken"))]
    });
    let mut f = Fixture::start(fake);
    let reqs = f.watch(Api::Events);
    f.backoff(&reqs, "events answering 500");
    let errors = f.errors("events");
    f.check(errors >= 2.0, format!("errors_total{{events}} = {errors}"));
    // The daemon answers pings: within a ping interval /health blames only the events.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut last = (0, Value::Null);
    while Instant::now() < deadline {
        last = f.health();
        if last.1["docker"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, health) = last;
    let reasons = health["reasons"].as_array().cloned().unwrap_or_default();
    f.check(
        status == 503
            && health["docker"] == true
            && health["events"] == false
            && reasons.len() == 1
            && reasons[0]
                .as_str()
                .is_some_and(|r| r.contains("events stream is down")),
        format!("/health {status} {health}"),
    );
    f.finish();
}

/// (j) A valid frame dripped a byte at a time: slower than `read_timeout` (every byte,
/// chunk-size lines included, crosses a per-read timeout), then 1 byte/s. The line arrives
/// intact; the capturer neither spins nor delays SIGTERM.
#[test]
fn logs_drip() {
    let first = frame(1, b"2026-11-26T17:55:29Z d1\n");
    let second = frame(1, b"2026-11-26T17:55:30Z d2\n");
    let fake = FakeDaemon::start();
    fake.add(FakeContainer::running("fake-1"));
    fake.on(Api::Logs, move |call| {
        if call.nth > 0 {
            return vec![Step::Head(200, None), Step::Hold];
        }
        vec![
            Step::Head(200, None),
            Step::Drip(chunk_wire(&first), Duration::from_millis(250)),
            Step::Drip(chunk_wire(&second), Duration::from_secs(1)),
            Step::Hold,
        ]
    });
    let mut f = Fixture::start(fake);
    f.delivered_once("d1", Duration::from_secs(20));
    let cpu = f.cpu_over(Duration::from_secs(2));
    f.check(
        cpu < 0.5,
        format!("{cpu:.2} CPU s in 2 s on a 1 byte/s stream: spinning"),
    );
    let logs = f.fake.count(Api::Logs);
    f.check(
        logs == 1,
        format!("{logs} logs requests: a slow stream is not an error"),
    );
    f.never_delivered(|m| m == "d2", "a frame still dripping");
    // SIGTERM lands mid-frame (finish checks exit 0).
    f.finish();
}
