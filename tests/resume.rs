//! Exactly once across restarts (README, Guarantees): of the capturer (SIGTERM and SIGKILL), of a
//! container (`docker restart`), of the daemon itself; containers that come and go while
//! the capturer is down; renames; containers that live milliseconds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    docker, exclusive_daemon, http_get, image, shared_daemon, unique, wait_for, Capturer, Container,
};

/// Writes "n 1" .. "n N" at about 2,000 lines/s.
pub(crate) fn producer(n: usize) -> String {
    format!(
        "trap 'exit 0' TERM; i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"n $i\"; \
         if [ $((i % 100)) -eq 0 ]; then sleep 0.05; fi; done"
    )
}

/// (lost, duplicated) among "n 1" .. "n N".
pub(crate) fn tally(records: &[Value], n: usize) -> (Vec<usize>, usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for r in records {
        let msg = r["message"].as_str().unwrap_or("");
        if let Some(i) = msg.strip_prefix("n ").and_then(|s| s.parse().ok()) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let lost = (1..=n).filter(|i| !seen.contains_key(i)).collect();
    let dup = seen.values().map(|c| c - 1).sum();
    (lost, dup)
}

/// Waits until `name` has every line "n 1..N", or times out reporting what is missing.
pub(crate) fn wait_complete(cap: &Capturer, name: &str, n: usize) -> Vec<Value> {
    wait_complete_within(cap, name, n, Duration::from_secs(60))
}

/// [`wait_complete`] with its own timeout.
pub(crate) fn wait_complete_within(
    cap: &Capturer,
    name: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let recs = cap.records_of(name);
        let (lost, _) = tally(&recs, n);
        if lost.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            return cap.records_of(name);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines never arrived (first: {:?}); log:\n{}",
            lost.len(),
            &lost[..lost.len().min(10)],
            cap.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_and_restart_lose_and_duplicate_nothing() {
    let _daemon = shared_daemon();
    let name = unique("resume-term");
    let mut cap = Capturer::start(&name, "");
    let n = 14_000;
    let c = Container::run(&name, &[], &producer(n));
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        let (status, _) = cap.terminate(Duration::from_secs(10));
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(400));
        cap.restart();
    }
    c.wait();
    let recs = wait_complete(&cap, &name, n);
    let (lost, dup) = tally(&recs, n);
    assert_eq!(
        (lost.len(), dup),
        (0, 0),
        "lost and duplicated after 3 SIGTERM restarts"
    );
    let in_order: Vec<&str> = recs
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    let mut sorted = in_order.clone();
    sorted.sort_by_key(|m| m[2..].parse::<usize>().unwrap_or(0));
    assert_eq!(in_order, sorted, "in order");
}

#[test]
fn sigkill_and_restart_lose_nothing_and_duplicate_at_most_a_batch() {
    let _daemon = shared_daemon();
    let name = unique("resume-kill");
    let batch = 200;
    let mut cap = Capturer::start(&name, &format!("[pipeline]\nbatch_records = {batch}\n"));
    let n = 14_000;
    let c = Container::run(&name, &[], &producer(n));
    let kills = 3;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(1500));
        cap.kill9();
        std::thread::sleep(Duration::from_millis(400));
        cap.restart();
    }
    c.wait();
    let recs = wait_complete(&cap, &name, n);
    let (lost, dup) = tally(&recs, n);
    eprintln!(
        "SIGKILL x{kills}: lost {}, duplicated {dup} (bound {})",
        lost.len(),
        kills * batch
    );
    assert!(lost.is_empty());
    assert!(
        dup <= kills * batch,
        "{dup} duplicates after {kills} kills, batch {batch}"
    );
}

#[test]
fn container_created_and_exited_while_down_is_captured() {
    let _daemon = shared_daemon();
    let prefix = unique("while-down");
    let mut cap = Capturer::start(&format!("{prefix}-*"), "");
    let before = Container::run(&format!("{prefix}-before"), &[], "echo before");
    before.wait();
    cap.wait_records(&before.name, 1, Duration::from_secs(30));
    let (status, _) = cap.terminate(Duration::from_secs(10));
    assert!(status.success());
    let during = Container::run(
        &format!("{prefix}-during"),
        &[],
        "for i in $(seq 1 500); do echo \"n $i\"; done",
    );
    during.wait();
    cap.restart();
    let recs = wait_complete(&cap, &during.name, 500);
    assert_eq!(tally(&recs, 500), (vec![], 0));
    assert_eq!(
        cap.records_of(&before.name).len(),
        1,
        "the earlier container is not read again"
    );
}

#[test]
fn docker_restart_of_a_producer_is_exactly_once() {
    let _daemon = shared_daemon();
    let name = unique("restart");
    let cap = Capturer::start(&name, "");
    let script = "c=$(cat /c 2>/dev/null || echo 0); c=$((c+1)); echo $c > /c; \
                  i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo \"run $c line $i\"; sleep 0.01; done; sleep 1000";
    let c = Container::run(&name, &[], script);
    cap.wait_records(&name, 100, Duration::from_secs(30));
    docker(&["restart", "-t", "0", &c.id]);
    wait_for(Duration::from_secs(60), "run 2 to finish", || {
        let r = cap.records_of(&name);
        r.iter()
            .any(|r| r["message"] == "run 2 line 300")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let recs = cap.records_of(&name);
    let messages: Vec<String> = recs
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    let run1: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("run 1 "))
        .collect();
    let run2: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("run 2 "))
        .collect();
    let want1: Vec<String> = (1..=run1.len())
        .map(|i| format!("run 1 line {i}"))
        .collect();
    let want2: Vec<String> = (1..=300).map(|i| format!("run 2 line {i}")).collect();
    assert_eq!(
        run1.into_iter().cloned().collect::<Vec<_>>(),
        want1,
        "run 1 once, in order"
    );
    assert_eq!(
        run2.into_iter().cloned().collect::<Vec<_>>(),
        want2,
        "run 2 once, in order"
    );
    assert_eq!(messages.len(), want1.len() + 300, "nothing else");
}

#[test]
fn rename_shows_in_later_records() {
    let _daemon = shared_daemon();
    let prefix = unique("rename");
    let cap = Capturer::start(&format!("{prefix}*"), "");
    let c = Container::run(
        &prefix,
        &[],
        "i=0; while true; do i=$((i+1)); echo \"n $i\"; sleep 0.05; done",
    );
    cap.wait_records(&prefix, 5, Duration::from_secs(30));
    let new_name = format!("{prefix}-renamed");
    docker(&["rename", &c.id, &new_name]);
    let renamed = cap.wait_records(&new_name, 5, Duration::from_secs(30));
    assert!(renamed.iter().all(|r| r["container_id"] == c.id.as_str()));
    let all: Vec<Value> = cap
        .records()
        .into_iter()
        .filter(|r| r["container_id"] == c.id.as_str())
        .collect();
    let first_new = all
        .iter()
        .position(|r| r["container_name"] == new_name.as_str())
        .unwrap();
    assert!(
        all[first_new..]
            .iter()
            .all(|r| r["container_name"] == new_name.as_str()),
        "no old name after the rename"
    );
    let n = all.len();
    assert_eq!(tally(&all, n).1, 0, "no duplicates across the rename");
}

/// `--rm` containers are removed, log file included, right after they exit: a logs
/// request that reaches dockerd after that finds nothing ("Error grabbing logs: ... no such
/// file"). Measured here, `start` to `destroy` of such a container is about 38 ms. Run
/// alone, the capturer's request (opened straight from the start event) wins every time
/// (50/50); with both cores busy compiling it lost 4 of 50. So the test runs with the
/// daemon to itself and allows a few misses; a regression to inspect-before-follow would
/// capture almost none.
#[test]
fn short_lived_rm_containers_are_all_captured() {
    let _daemon = exclusive_daemon();
    let prefix = unique("rm");
    let cap = Capturer::start(&format!("{prefix}-*"), "");
    let runs = 50;
    let img = image();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (prefix, img) = (&prefix, &img);
            s.spawn(move || {
                for i in (t..runs).step_by(4) {
                    let name = format!("{prefix}-{i}");
                    let out = Command::new("docker")
                        .args([
                            "run",
                            "--rm",
                            "--network",
                            "none",
                            "--name",
                            &name,
                            img,
                            "sh",
                            "-c",
                        ])
                        .arg("echo a; echo b >&2; echo c")
                        .output()
                        .expect("docker run");
                    // dockerd 20.10 sometimes fails the removal itself ("unable to remove
                    // filesystem ... directory not empty") while a log reader is open; the
                    // container ran and logged all the same. Clean it up and go on.
                    if !out.status.success() {
                        eprintln!(
                            "docker run --rm {name}: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        );
                        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
                    }
                }
            });
        }
    });
    let complete = |recs: &[Value]| {
        (0..runs)
            .filter(|i| {
                let name = format!("{prefix}-{i}");
                let mut msgs: Vec<&str> = recs
                    .iter()
                    .filter(|r| r["container_name"] == name.as_str())
                    .map(|r| r["message"].as_str().unwrap_or(""))
                    .collect();
                msgs.sort();
                msgs == ["a", "b", "c"]
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    while Instant::now() < deadline {
        got = complete(&cap.records());
        if got == runs {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("--rm containers of ~50 ms captured completely: {got}/{runs}");
    assert!(got >= runs - 5, "{got}/{runs}; log:\n{}", cap.log());
}

#[test]
fn daemon_restart_recovers_and_loses_nothing() {
    let _daemon = exclusive_daemon();
    let name = unique("daemon");
    let cap = Capturer::start(&name, "");
    let c = Container::run(
        &name,
        &[],
        "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo \"n $i\"; sleep 0.02; done",
    );
    cap.wait_records(&name, 50, Duration::from_secs(30));

    stop_dockerd();
    let down = Instant::now();
    let up = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-up.sh"))
        .status()
        .expect("run scripts/docker-up.sh");
    assert!(up.success(), "dockerd did not come back");
    let restarted = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "capturer healthy after the daemon restart",
        || http_get(cap.port, "/health").filter(|(s, _)| *s == 200),
    );
    // Everything the container wrote before the daemon stopped it.
    let logs = docker(&["logs", &c.id]);
    let n = logs.lines().filter(|l| l.starts_with("n ")).count();
    assert!(n >= 50);
    // Followers reconnect with backoff capped at 30 s: delivery may legitimately come that
    // late after dockerd answers. 5x the cap only catches a capturer that never recovers;
    // how fast it recovers is printed, not judged.
    let recs = wait_complete_within(&cap, &name, n, Duration::from_secs(150));
    let recovered = restarted.elapsed();
    let (lost, dup) = tally(&recs, n);
    eprintln!(
        "daemon restart: down for {:?}, all {n} lines delivered {recovered:?} after dockerd answered; lost {}, duplicated {dup}",
        restarted - down,
        lost.len()
    );
    assert_eq!((lost.len(), dup), (0, 0));
    assert!(cap.metric("log_capturer_events_reconnects_total") >= 1.0);
}

/// SIGTERM to dockerd, and wait until it is gone (it stops its containers first).
fn stop_dockerd() {
    let pids = Command::new("sh")
        .args(["-c", "pidof dockerd || true"])
        .output()
        .expect("pidof");
    let pids = String::from_utf8_lossy(&pids.stdout).trim().to_string();
    assert!(!pids.is_empty(), "no dockerd to restart");
    for pid in pids.split_whitespace() {
        let _ = Command::new("kill").arg(pid).status();
    }
    wait_for(Duration::from_secs(60), "dockerd to exit", || {
        let alive = pids
            .split_whitespace()
            .any(|p| Path::new(&format!("/proc/{p}/status")).exists() && !is_zombie(p));
        (!alive).then_some(())
    });
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn initial_applies_to_containers_running_before_the_first_run() {
    initial_applies("");
}

#[test]
fn initial_applies_in_files_mode_too() {
    initial_applies("read_from = \"files\"\n");
}

/// `containers_toml`: more keys of `[containers]`.
fn initial_applies(containers_toml: &str) {
    let _daemon = shared_daemon();
    let prefix = unique("initial");
    let script = "for i in $(seq 1 100); do echo \"n $i\"; done; sleep 1000";
    let c = Container::run(&format!("{prefix}-0"), &[], script);
    wait_for(
        Duration::from_secs(30),
        "100 lines in the container's log",
        || (docker(&["logs", &c.id]).lines().count() >= 100).then_some(()),
    );
    let tail = Capturer::start(
        &format!("{prefix}-*"),
        &format!("[containers]\ninitial = \"tail:5\"\n{containers_toml}"),
    );
    let recs = tail.wait_records(&c.name, 5, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let msgs: Vec<String> = tail
        .records_of(&c.name)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        msgs,
        (96..=100).map(|i| format!("n {i}")).collect::<Vec<_>>()
    );
    assert_eq!(recs.len(), 5);

    let beginning = Capturer::start(
        &format!("{prefix}-*"),
        &format!("[containers]\ninitial = \"beginning\"\n{containers_toml}"),
    );
    beginning.wait_records(&c.name, 100, Duration::from_secs(30));

    let now = Capturer::start(
        &format!("{prefix}-*"),
        &format!("[containers]\n{containers_toml}"),
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        now.records_of(&c.name).is_empty(),
        "initial = now skips the backlog"
    );
    assert_eq!(now.metric("log_capturer_active_streams"), 1.0);
}
