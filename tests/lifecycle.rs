//! Lifecycle: no leaked threads or FDs after containers come and go, and a SIGTERM with
//! many active streams stops the process cleanly (how fast is a benchmark's business;
//! here a generous bound only catches a hang).

use std::time::Duration;

use crate::util::{docker, unique, wait_for, Capturer, Container};

/// How long a state the test waits for may take to come (a hang catcher).
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn threads_and_fds_return_to_baseline_after_containers_go_away() {
    churn_returns_to_baseline("");
}

/// Files mode holds each container's log file open instead of a socket: let go the same.
#[test]
fn files_mode_threads_and_fds_return_to_baseline_after_containers_go_away() {
    churn_returns_to_baseline("[containers]\nread_from = \"files\"\n");
}

/// An idle capturer sleeps: following quiet containers (one silent, one writing a line a
/// second), in each mode, it uses next to no CPU. Each fixed thread and each follower
/// waits for an event, with no timer shorter than seconds; a thread that spins (a wait
/// whose deadline is already past) takes a whole core, 3 CPU s over these 3 s.
#[test]
fn an_idle_capturer_uses_next_to_no_cpu() {
    let _daemon = crate::util::shared_daemon();
    for (mode, extra) in [
        ("api", ""),
        ("files", "[containers]\nread_from = \"files\"\n"),
    ] {
        let prefix = unique(&format!("idle-{mode}"));
        let cap = Capturer::start(&format!("{prefix}-*"), extra);
        let _quiet = [
            Container::run(&format!("{prefix}-silent"), &[], "sleep 100000"),
            Container::run(
                &format!("{prefix}-tick"),
                &[],
                "while true; do echo tick; sleep 1; done",
            ),
        ];
        wait_for(WAIT, "both followed, a line delivered", || {
            (cap.metric("log_capturer_active_streams") == 2.0 && !cap.records().is_empty())
                .then_some(())
        });
        let before = cap.cpu_secs();
        std::thread::sleep(Duration::from_secs(3));
        let used = cap.cpu_secs() - before;
        eprintln!("{mode} mode: {used:.2} CPU s in 3 s idle");
        // Measured about 0.01-0.02 s (2026-12-07); 0.3 s is a tenth of a core.
        assert!(used <= 0.3, "{mode} mode: {used:.2} CPU s in 3 s idle");
    }
}

fn churn_returns_to_baseline(extra_toml: &str) {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("leak");
    let cap = Capturer::start(
        &format!("{prefix}-*"),
        &format!("[docker]\nidle_timeout = \"1s\"\n{extra_toml}"),
    );
    // The baseline at rest: no pooled connection left idle (they close after 1 s), so the
    // same state can be awaited at the end.
    let (base_threads, base_fds) = wait_for(WAIT, "the capturer at rest", || at_rest(&cap));

    for round in 0..2 {
        let containers: Vec<Container> = (0..6)
            .map(|i| {
                Container::run(
                    &format!("{prefix}-{round}-{i}"),
                    &[],
                    "while true; do echo tick; sleep 0.2; done",
                )
            })
            .collect();
        wait_for(Duration::from_secs(30), "6 active streams", || {
            (cap.metric("log_capturer_active_streams") == 6.0).then_some(())
        });
        assert_eq!(
            cap.threads(),
            base_threads + 6,
            "one thread per followed container"
        );
        let ids: Vec<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        docker(&args);
        wait_for(Duration::from_secs(30), "streams to end", || {
            (cap.metric("log_capturer_active_streams") == 0.0 && cap.streams().is_empty())
                .then_some(())
        });
    }
    // Idle keep-alive connections close after idle_timeout; followers are joined. Threads
    // come back exactly. FDs may end below the baseline: one seen in a loaded full run
    // (files mode, 12 at the baseline, 11 at the end) is not identified yet, so the FD
    // check stays a bound; the FDs are printed at both ends to find it.
    eprintln!("FDs at the baseline: {:?}", fd_links(&cap));
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = None;
    while !last.is_some_and(|(t, f)| t == base_threads && f <= base_fds) {
        assert!(
            std::time::Instant::now() < deadline,
            "threads and FDs at rest {last:?}, baseline {:?}",
            (base_threads, base_fds)
        );
        last = at_rest(&cap).or(last);
    }
    eprintln!("FDs at the end: {:?}", fd_links(&cap));
    assert_eq!(cap.metric("log_capturer_stream_starts_total"), 12.0);
}

/// (threads, FDs) if no stream is active and no pooled Docker connection is idle, the
/// same in two readings 100 ms apart (so a file opened for a moment is not counted).
/// The connections the endpoint server accepted (the test's own /metrics requests, which
/// a loaded server may not have closed yet) are not counted.
fn at_rest(cap: &Capturer) -> Option<(usize, usize)> {
    let quiet = |cap: &Capturer| {
        cap.metric("log_capturer_active_streams") == 0.0
            && cap.metric("log_capturer_docker_http_idle_connections") == 0.0
    };
    let first = (cap.threads(), fds_but_served(cap));
    std::thread::sleep(Duration::from_millis(100));
    let second = (cap.threads(), fds_but_served(cap));
    (quiet(cap) && first == second).then_some(second)
}

/// The capturer's FDs, without the sockets its endpoint server accepted on `cap.port`.
fn fds_but_served(cap: &Capturer) -> usize {
    // Socket inodes of TCP connections whose local port is the server's, not listening.
    let mut served = std::collections::HashSet::new();
    for table in ["tcp", "tcp6"] {
        let text =
            std::fs::read_to_string(format!("/proc/{}/net/{table}", cap.pid())).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f.get(1).and_then(|a| a.rsplit(':').next());
            let port = port.and_then(|p| u16::from_str_radix(p, 16).ok());
            if port == Some(cap.port) && f.get(3) != Some(&"0A") {
                served.extend(f.get(9).map(|inode| format!("socket:[{inode}]")));
            }
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{}/fd", cap.pid()));
    fds.map(|d| {
        d.flatten()
            .filter(|e| {
                let link = std::fs::read_link(e.path()).unwrap_or_default();
                !served.contains(&*link.to_string_lossy())
            })
            .count()
    })
    .unwrap_or(0)
}

/// What each FD of the capturer is, for the log of a failure.
fn fd_links(cap: &Capturer) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", cap.pid()));
    let link = |e: std::fs::DirEntry| {
        let to = std::fs::read_link(e.path()).unwrap_or_default();
        format!("{}={}", e.file_name().to_string_lossy(), to.display())
    };
    fds.map(|d| d.flatten().map(link).collect())
        .unwrap_or_default()
}

/// The stop goal is 2 s (every follower's read times out within `docker.read_timeout`,
/// 1 s); a test only catches a stop that hangs, at 5x that.
const STOP_HANG: Duration = Duration::from_secs(10);

#[test]
fn sigterm_with_50_active_streams_exits_0() {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("term");
    let mut cap = Capturer::start(&format!("{prefix}-*"), "");
    std::thread::sleep(Duration::from_millis(500));
    let base_threads = cap.threads();
    let containers: Vec<Container> = (0..50)
        .map(|i| {
            Container::run(
                &format!("{prefix}-{i}"),
                &[],
                "while true; do echo tick; sleep 0.5; done",
            )
        })
        .collect();
    wait_for(Duration::from_secs(120), "50 active streams", || {
        (cap.metric("log_capturer_active_streams") == 50.0).then_some(())
    });
    // Every container has a record in the file, so the file cannot be empty at the stop.
    for c in &containers {
        cap.wait_records(&c.name, 1, Duration::from_secs(30));
    }
    assert_eq!(
        cap.threads(),
        base_threads + 50,
        "one thread per followed container"
    );
    let (status, took) = cap.terminate(STOP_HANG * 3);
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        cap.log()
    );
    assert!(took < STOP_HANG, "shutdown took {took:?}: a hang");
    assert!(cap.log().contains("log-capturer stopped"));
    // Every record written before the stop is a whole JSON line, and every container has
    // its records.
    let text = std::fs::read_to_string(&cap.out).expect("the file sink's output");
    let last = text.lines().last().unwrap_or("");
    assert!(text.ends_with('\n'), "torn last line: {last:.200}");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}")))
        .collect();
    for c in &containers {
        let n = records
            .iter()
            .filter(|r| r["container_name"] == c.name.as_str())
            .count();
        assert!(n >= 1, "{} has no record", c.name);
    }
    drop(containers);
}
