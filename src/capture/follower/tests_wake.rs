//! A live files-mode follower woken by inotify (no daemon): with the safety re-check at
//! 60 s, a line written, and two rotations in quick succession, still arrive within 10 s
//! (so it was the event that woke it); the container's exit wakes it to end; a follower
//! busy with a backlog drops its watch and takes it again once caught up; without
//! inotify it polls (and the fallback is counted).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tests::{follower_with, queued, write_log, Run, BOTH, ID};
use super::{EndReason, StartFrom};
use crate::capture::watch::Watcher;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sink::queue::Consumer;

/// Long enough for a loaded machine; far shorter than the 60 s re-check.
const WITHIN: Duration = Duration::from_secs(10);

fn log_path(root: &Path) -> PathBuf {
    root.join("containers")
        .join(ID)
        .join(format!("{ID}-json.log"))
}

fn entry(ns: u32, text: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({
            "log": format!("{text}\n"),
            "stream": "stdout",
            "time": format!("2026-12-02T10:00:01.{ns:09}Z"),
        })
    )
}

fn append(root: &Path, ns: u32, text: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(log_path(root))
        .unwrap();
    f.write_all(entry(ns, text).as_bytes()).unwrap();
}

/// Messages queued until `n` arrived or [`WITHIN`] passed.
fn collect(rx: &Consumer, n: usize, got: &mut Vec<String>) {
    let deadline = Instant::now() + WITHIN;
    while got.len() < n && Instant::now() < deadline {
        got.extend(queued(rx).into_iter().map(|r| r.message));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs a live follower of the log under `root` on its own thread while `f` writes;
/// then the container exits, which must end the follower within [`WITHIN`].
fn live(
    root: &Path,
    watcher: &Watcher,
    metrics: Arc<Metrics>,
    f: impl FnOnce(&Consumer),
) -> EndReason {
    let Run {
        follower,
        rx,
        exited,
        ..
    } = follower_with(
        root,
        StartFrom::Beginning,
        BOTH,
        false,
        Some(watcher.watching()),
        metrics,
    );
    let wake = follower.ctx.wake.clone();
    let (done_tx, done) = crossbeam_channel::bounded(1);
    // The container exits: the supervisor sets the flag and raises the wake. When `f`
    // panics, the queue closes too, or the scope would wait for the follower for ever.
    struct Exits {
        exited: Arc<std::sync::atomic::AtomicBool>,
        wake: Arc<crate::capture::watch::Wake>,
        rx: Option<Consumer>,
    }
    impl Exits {
        fn exit(&self) {
            self.exited.store(true, Ordering::SeqCst);
            self.wake.notify();
        }
    }
    impl Drop for Exits {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.rx.take();
                self.exit();
            }
        }
    }
    std::thread::scope(|s| {
        s.spawn(move || done_tx.send(follower.run().reason));
        let exits = Exits {
            exited,
            wake,
            rx: Some(rx),
        };
        if let Some(rx) = &exits.rx {
            f(rx);
        }
        exits.exit();
        done.recv_timeout(WITHIN)
            .expect("the exit woke the follower")
    })
}

#[test]
fn a_write_wakes_the_follower_without_waiting_for_the_recheck() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[("stdout", 1, "one\n")]);
    let metrics = Arc::new(Metrics::new().unwrap());
    let watcher = Watcher::start(metrics.inotify_fallbacks.clone(), &Shutdown::new());
    let reason = live(dir.path(), &watcher, metrics.clone(), |rx| {
        let mut got = Vec::new();
        collect(rx, 1, &mut got);
        assert_eq!(
            watcher.watching().readers(),
            1,
            "the follower sleeps on inotify"
        );
        append(dir.path(), 1, "two");
        collect(rx, 2, &mut got);
        assert_eq!(got, ["one", "two"]);
    });
    assert_eq!(reason, EndReason::Eof);
    assert_eq!(metrics.inotify_fallbacks.get(), 0);
    assert_eq!(watcher.watching().readers(), 0, "its watch ended with it");
}

#[test]
fn two_rotations_in_quick_succession_lose_nothing_for_a_watched_follower() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[("stdout", 1, "a1\n")]);
    let metrics = Arc::new(Metrics::new().unwrap());
    let watcher = Watcher::start(metrics.inotify_fallbacks.clone(), &Shutdown::new());
    let current = log_path(dir.path());
    let rotated = |k: u32| PathBuf::from(format!("{}.{k}", current.display()));
    live(dir.path(), &watcher, metrics.clone(), |rx| {
        let mut got = Vec::new();
        collect(rx, 1, &mut got);
        assert_eq!(watcher.watching().readers(), 1);
        // json-file's rotation, twice, with no pause: .1 -> .2, current -> .1, new current.
        append(dir.path(), 2, "a2");
        fs::rename(&current, rotated(1)).unwrap();
        fs::write(&current, entry(3, "b1")).unwrap();
        fs::rename(rotated(1), rotated(2)).unwrap();
        fs::rename(&current, rotated(1)).unwrap();
        fs::write(&current, entry(4, "c1")).unwrap();
        collect(rx, 4, &mut got);
        assert_eq!(got, ["a1", "a2", "b1", "c1"]);
    });
    assert_eq!(metrics.file_rotations.get(), 2);
}

#[test]
fn a_busy_follower_drops_its_watch_until_it_has_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[("stdout", 1, "first\n")]);
    // A backlog of several read chunks (64 KiB); the test's queue holds 25 of this
    // follower's records, so it waits on the queue in the middle of it.
    const BACKLOG: u32 = 3000;
    let backlog: String = (0..BACKLOG)
        .map(|i| entry(i + 2, &format!("b{i}")))
        .collect();
    assert!(backlog.len() > 3 * 64 * 1024);
    let metrics = Arc::new(Metrics::new().unwrap());
    let watcher = Watcher::start(metrics.inotify_fallbacks.clone(), &Shutdown::new());
    let reason = live(dir.path(), &watcher, metrics.clone(), |rx| {
        let mut got = Vec::new();
        collect(rx, 1, &mut got);
        assert_eq!(watcher.watching().readers(), 1, "idle: watched");
        let mut f = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .unwrap();
        f.write_all(backlog.as_bytes()).unwrap();
        // Taken a queue's worth at a time: the follower is held inside the backlog.
        let deadline = Instant::now() + WITHIN;
        let mut unwatched_while_busy = false;
        while got.len() < 1 + BACKLOG as usize && Instant::now() < deadline {
            unwatched_while_busy |= watcher.watching().readers() == 0;
            got.extend(queued(rx).into_iter().map(|r| r.message));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(got.len(), 1 + BACKLOG as usize, "the backlog, all of it");
        assert!(unwatched_while_busy, "no watch while reading a backlog");
        let deadline = Instant::now() + WITHIN;
        while watcher.watching().readers() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(watcher.watching().readers(), 1, "caught up: watched again");
        // Woken by inotify again (the re-check is 60 s away).
        append(dir.path(), 1, "after");
        collect(rx, 2 + BACKLOG as usize, &mut got);
        assert_eq!(got.last().map(String::as_str), Some("after"));
        let expected: Vec<String> = std::iter::once("first".to_owned())
            .chain((0..BACKLOG).map(|i| format!("b{i}")))
            .chain(std::iter::once("after".to_owned()))
            .collect();
        assert_eq!(got, expected, "each line once, in order");
    });
    assert_eq!(reason, EndReason::Eof);
    assert_eq!(metrics.inotify_fallbacks.get(), 0);
}

#[test]
fn without_inotify_the_follower_polls_and_the_fallback_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[("stdout", 1, "one\n")]);
    let metrics = Arc::new(Metrics::new().unwrap());
    let watcher = Watcher::start_with(
        || Err(std::io::Error::from_raw_os_error(24)),
        metrics.inotify_fallbacks.clone(),
        &Shutdown::new(),
    );
    let reason = live(dir.path(), &watcher, metrics.clone(), |rx| {
        let mut got = Vec::new();
        collect(rx, 1, &mut got);
        append(dir.path(), 1, "two");
        collect(rx, 2, &mut got);
        assert_eq!(got, ["one", "two"]);
    });
    assert_eq!(reason, EndReason::Eof);
    assert_eq!(metrics.inotify_fallbacks.get(), 1);
}
