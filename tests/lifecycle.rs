//! Lifecycle: no leaked threads or FDs after containers come and go, and a SIGTERM with
//! many active streams stops the process cleanly (how fast is a benchmark's business;
//! here a generous bound only catches a hang).

use std::time::Duration;

use crate::util::{docker, unique, wait_for, Capturer, Container};

#[test]
fn threads_and_fds_return_to_baseline_after_containers_go_away() {
    churn_returns_to_baseline("");
}

/// Files mode holds each container's log file open instead of a socket: let go the same.
#[test]
fn files_mode_threads_and_fds_return_to_baseline_after_containers_go_away() {
    churn_returns_to_baseline("[containers]\nread_from = \"files\"\n");
}

fn churn_returns_to_baseline(extra_toml: &str) {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("leak");
    let cap = Capturer::start(
        &format!("{prefix}-*"),
        &format!("[docker]\nidle_timeout = \"1s\"\n{extra_toml}"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (base_threads, base_fds) = (cap.threads(), cap.fds());

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
    // Idle keep-alive connections close after idle_timeout; followers are joined.
    let (threads, fds) = wait_for(
        Duration::from_secs(20),
        "threads and FDs back to baseline",
        || {
            let (t, f) = (cap.threads(), cap.fds());
            (t <= base_threads && f <= base_fds).then_some((t, f))
        },
    );
    assert_eq!(threads, base_threads);
    assert!(fds <= base_fds, "fds {fds} > baseline {base_fds}");
    assert_eq!(cap.metric("log_capturer_stream_starts_total"), 12.0);
}

/// The stop goal is 2 s (every follower's read times out within `docker.read_timeout`,
/// 1 s); a test only catches a stop that hangs, at 5x that.
const STOP_HANG: Duration = Duration::from_secs(10);

#[test]
fn sigterm_with_50_active_streams_exits_0() {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("term");
    let mut cap = Capturer::start(&format!("{prefix}-*"), "");
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
    let threads = cap.threads();
    assert!(threads >= 50, "{threads} threads for 50 streams");
    let (status, took) = cap.terminate(STOP_HANG * 3);
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        cap.log()
    );
    assert!(took < STOP_HANG, "shutdown took {took:?}: a hang");
    assert!(cap.log().contains("log-capturer stopped"));
    // Every record written before the stop is a whole JSON line.
    let text = std::fs::read_to_string(&cap.out).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'));
    drop(containers);
}
