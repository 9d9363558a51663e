//! `read_from = "files"`: json-file logs read from disk. The records must be the very
//! bytes API mode writes (two capturers, one per mode, follow the same containers), no
//! logs request may reach dockerd, rotation (`max-size`/`max-file`) and capturer restarts
//! must stay exactly once, and containers on other log drivers still come through the API.

use std::time::Duration;

use serde_json::Value;

use crate::resume::{producer, tally, wait_complete};
use crate::util::{shared_daemon, unique, wait_for, Capturer, Container};

const FILES: &str = "[containers]\nread_from = \"files\"\n";
const WAIT: Duration = Duration::from_secs(30);

/// The raw JSON lines a capturer wrote for one container.
fn raw_lines(cap: &Capturer, name: &str) -> Vec<String> {
    let needle = format!("\"container_name\":\"{name}\"");
    std::fs::read_to_string(&cap.out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

fn logs_requests(cap: &Capturer) -> f64 {
    let text = cap.metrics();
    text.lines()
        .find(|l| l.starts_with("log_capturer_docker_http_requests_total{endpoint=\"logs\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn files_mode_writes_the_same_bytes_as_api_mode() {
    let _daemon = shared_daemon();
    let prefix = unique("same");
    let api = Capturer::start(&format!("{prefix}-*"), "");
    let files = Capturer::start(&format!("{prefix}-*"), FILES);
    let scenarios: [(&str, &[&str], &str, usize); 6] = [
        (
            "mixed",
            &[],
            "for i in $(seq 1 300); do echo \"out $i\"; echo \"err $i\" >&2; done",
            600,
        ),
        ("tty", &["-t"], "echo first; echo second; echo third >&2", 3),
        (
            "long",
            &[],
            "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after",
            2,
        ),
        ("nonl", &[], "echo one; printf 'last words'", 2),
        (
            "utf8",
            &[],
            "printf 'a\\377\\376b\\n'; printf 'ok \\303\\251\\t\"q\"\\n'",
            2,
        ),
        (
            "cut",
            &[],
            "head -c 3000000 /dev/zero | tr '\\0' y; echo; echo short",
            2,
        ),
    ];
    let containers: Vec<(Container, usize)> = scenarios
        .iter()
        .map(|(tag, extra, script, n)| {
            (
                Container::run(&format!("{prefix}-{tag}"), extra, script),
                *n,
            )
        })
        .collect();
    for (c, _) in &containers {
        c.wait();
    }
    for (c, n) in &containers {
        api.wait_records(&c.name, *n, WAIT);
        files.wait_records(&c.name, *n, WAIT);
    }
    std::thread::sleep(Duration::from_millis(500));
    for (c, n) in &containers {
        let (a, f) = (raw_lines(&api, &c.name), raw_lines(&files, &c.name));
        assert_eq!(a.len(), *n, "{}: api mode", c.name);
        assert_eq!(f.len(), *n, "{}: files mode", c.name);
        for (x, y) in a.iter().zip(&f) {
            assert!(
                x == y,
                "{}: records differ:\napi:   {:.300}\nfiles: {:.300}",
                c.name,
                x,
                y
            );
        }
    }
    assert_eq!(logs_requests(&files), 0.0, "files mode sent a logs request");
    assert!(logs_requests(&api) >= containers.len() as f64);
    let cut: Value = serde_json::from_str(&raw_lines(&files, &format!("{prefix}-cut"))[0]).unwrap();
    assert_eq!(cut["truncated"], true);
}

/// A container that rotates its log many times (`max-size=100k`, `max-file=10`) while the
/// capturer runs, is stopped (SIGTERM), and is killed (SIGKILL): every line once.
#[test]
fn rotation_and_restarts_are_exactly_once_in_files_mode() {
    let _daemon = shared_daemon();
    let name = unique("rotate");
    let batch = 200;
    let mut cap = Capturer::start(
        &name,
        &format!("{FILES}[pipeline]\nbatch_records = {batch}\n"),
    );
    // About 25 bytes of log line and 90 of json-file per line: a rotation every ~1,100
    // lines, so about 12 of them over the run, some while the capturer is down. Ten files
    // keep about 5 s of output: a restart slowed down by a loaded machine (3 s were seen
    // in CI) must not let Docker delete a file the position needs (that case, where lines
    // are gone for every reader, is `a_position_whose_file_was_rotated_out...`).
    let n = 14_000;
    let c = Container::run(
        &name,
        &["--log-opt", "max-size=100k", "--log-opt", "max-file=10"],
        &producer(n),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = cap.terminate(Duration::from_secs(10));
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    cap.restart();
    std::thread::sleep(Duration::from_millis(1500));
    cap.kill9();
    std::thread::sleep(Duration::from_millis(300));
    cap.restart();
    c.wait();
    let recs = wait_complete(&cap, &name, n);
    let (lost, dup) = tally(&recs, n);
    let rotations = cap.metric("log_capturer_file_rotations_total");
    eprintln!(
        "files mode, max-size=100k: {n} lines, lost {}, duplicated {dup}, rotations followed by the last run {rotations}",
        lost.len()
    );
    assert!(lost.is_empty());
    assert!(
        dup <= batch,
        "{dup} duplicates after one SIGKILL, batch {batch}"
    );
    assert!(rotations >= 1.0, "the last run followed no rotation");
    // Woken by inotify on the container's log directory, not polling (README).
    assert!(cap
        .metrics()
        .contains("log_capturer_inotify_fallbacks_total 0"));
    let log = cap.log();
    assert!(
        !log.contains("resuming by time"),
        "a position's file was lost:\n{log}"
    );
    assert_eq!(logs_requests(&cap), 0.0);
}

/// A stopped and restarted container appends to the same file: resumed exactly.
#[test]
fn docker_restart_in_files_mode_is_exactly_once() {
    let _daemon = shared_daemon();
    let name = unique("frestart");
    let cap = Capturer::start(&name, FILES);
    let c = Container::run(
        &name,
        &[],
        "i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo \"run $i\"; done",
    );
    c.wait();
    cap.wait_records(&name, 3, WAIT);
    crate::util::docker(&["start", &c.id]);
    c.wait();
    let recs = cap.wait_records(&name, 6, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let msgs: Vec<String> = cap
        .records_of(&name)
        .iter()
        .map(|r| r["message"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        msgs,
        ["run 1", "run 2", "run 3", "run 1", "run 2", "run 3"],
        "{recs:?}"
    );
}

#[test]
fn other_log_drivers_come_through_the_api_with_a_warning() {
    let _daemon = shared_daemon();
    let name = unique("local");
    let cap = Capturer::start(&name, FILES);
    let c = Container::run(&name, &["--log-driver", "local"], "echo via the api");
    c.wait();
    let recs = cap.wait_records(&name, 1, WAIT);
    assert_eq!(recs[0]["message"], "via the api");
    let log = wait_for(WAIT, "the fallback warning", || {
        let log = cap.log();
        log.contains("through the API").then_some(log)
    });
    assert!(log.contains("WARN"), "{log}");
}

/// The position's file was rotated out of existence while the capturer was down (Docker
/// keeps `max-file` files): reading resumes by time from the oldest file left, like the
/// API would. Lines Docker deleted are gone for everyone; every line still on disk
/// arrives exactly once, and none twice.
#[test]
fn a_position_whose_file_was_rotated_out_resumes_by_time() {
    let _daemon = shared_daemon();
    let name = unique("rotout");
    let mut cap = Capturer::start(&name, FILES);
    let script = "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo \"n $i\"; done; sleep 5; \
                  while [ $i -lt 5000 ]; do i=$((i+1)); echo \"n $i\"; done; sleep 1000";
    let c = Container::run(
        &name,
        &["--log-opt", "max-size=10k", "--log-opt", "max-file=2"],
        script,
    );
    cap.wait_records(&name, 200, WAIT);
    let (status, _) = cap.terminate(Duration::from_secs(10));
    assert!(status.success());
    let on_disk = wait_for(WAIT, "all 5000 lines written", || {
        let logs = crate::util::docker(&["logs", &c.id]);
        logs.contains("n 5000\n").then_some(logs)
    });
    let kept: Vec<String> = on_disk.lines().map(str::to_owned).collect();
    assert!(
        !kept.contains(&"n 201".to_owned()),
        "the test needs line 201 rotated out"
    );
    cap.restart();
    let mut want: Vec<String> = (1..=200).map(|i| format!("n {i}")).collect();
    want.extend(
        kept.iter()
            .filter(|l| !want.contains(l))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let deadline = std::time::Instant::now() + WAIT;
    let got = loop {
        let got: Vec<String> = cap
            .records_of(&name)
            .iter()
            .map(|r| r["message"].as_str().unwrap_or("").to_owned())
            .collect();
        if got.len() >= want.len() {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} lines; first after the 200: {:?}, wanted {:?}; log:\n{}",
            got.len(),
            want.len(),
            got.get(200),
            want.get(200),
            cap.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cap.records_of(&name).len(), got.len(), "nothing more came");
    assert_eq!(got, want, "lines 1-200, then exactly the lines Docker kept");
    assert!(cap.log().contains("resuming by time"), "{}", cap.log());
}

/// A container that runs and exits again and again, faster than a follower finishes:
/// every run's lines once, and no follower is left polling a container that is over.
#[test]
fn quick_successive_runs_leave_no_follower_behind() {
    let _daemon = shared_daemon();
    let name = unique("quickruns");
    let cap = Capturer::start(&name, FILES);
    let c = Container::run(&name, &[], "echo run");
    c.wait();
    for _ in 0..4 {
        crate::util::docker(&["start", &c.id]);
    }
    c.wait();
    let recs = cap.wait_records(&name, 5, WAIT);
    wait_for(WAIT, "no active stream", || {
        (cap.metric("log_capturer_active_streams") == 0.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cap.records_of(&name).len(), 5, "{recs:?}");
}
