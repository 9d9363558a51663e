//! The follower through its file source, on a json-file log in a temporary docker_root
//! (no daemon: `config.v2.json` answers the TTY question): lines become records of the
//! container, partial pieces are merged, unwanted streams are skipped, a resume after a
//! file position delivers only what follows it, and a stopped follower ends at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use super::*;
use crate::capture::record::{ContainerId, ContainerMeta, Origin, Position, Record, Stream};
use crate::capture::streams::StreamStats;
use crate::docker::client::ClientSettings;
use crate::metrics::Metrics;
use crate::process::rules::Shaping;
use crate::shutdown::Shutdown;
use crate::sink::queue::{self, Consumer};

pub(super) const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Writes the container's json-file log (one entry per `(stream, time ns, log)`) and its
/// `config.v2.json` under `root`.
pub(super) fn write_log(root: &Path, entries: &[(&str, u32, &str)]) {
    let dir = root.join("containers").join(ID);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.v2.json"), r#"{"Config":{"Tty":false}}"#).unwrap();
    let mut text = String::new();
    for (stream, ns, log) in entries {
        let entry = serde_json::json!({
            "log": log,
            "stream": stream,
            "time": format!("2026-12-02T10:00:00.{ns:09}Z"),
        });
        text.push_str(&entry.to_string());
        text.push('\n');
    }
    std::fs::write(dir.join(format!("{ID}-json.log")), text).unwrap();
}

pub(super) struct Run {
    pub follower: Follower,
    pub rx: Consumer,
    pub stop: Arc<AtomicBool>,
    pub exited: Arc<AtomicBool>,
}

/// A files-mode follower of the container under `root`, which already exited.
fn follower(root: &Path, start: StartFrom, streams: Streams) -> Run {
    shaped_follower(root, start, streams, None, true)
}

/// A follower of the container under `root`, which already exited, shaped by a rule:
/// in files mode, or through the API of a daemon on `<root>/docker.sock` (API 1.41).
pub(super) fn shaped_follower(
    root: &Path,
    start: StartFrom,
    streams: Streams,
    shaping: Option<Arc<Shaping>>,
    files: bool,
) -> Run {
    let setup = Setup {
        shaping,
        files,
        exited: true,
        watching: None,
    };
    build(
        root,
        start,
        streams,
        setup,
        Arc::new(Metrics::new().unwrap()),
    )
}

/// A files-mode follower of the container under `root`; `watching`: woken by inotify,
/// looking again only every 60 s with no event.
pub(super) fn follower_with(
    root: &Path,
    start: StartFrom,
    streams: Streams,
    exited: bool,
    watching: Option<crate::capture::watch::Watching>,
    metrics: Arc<Metrics>,
) -> Run {
    let setup = Setup {
        shaping: None,
        files: true,
        exited,
        watching,
    };
    build(root, start, streams, setup, metrics)
}

/// How a test follower is made.
struct Setup {
    shaping: Option<Arc<Shaping>>,
    files: bool,
    exited: bool,
    watching: Option<crate::capture::watch::Watching>,
}

fn build(
    root: &Path,
    start: StartFrom,
    streams: Streams,
    setup: Setup,
    metrics: Arc<Metrics>,
) -> Run {
    let meta = ContainerMeta::new(
        ContainerId::new(ID),
        "web-1".into(),
        "busybox".into(),
        BTreeMap::new(),
        Arc::from("h"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let exited = Arc::new(AtomicBool::new(setup.exited));
    let container = Container {
        shaping: setup.shaping,
        meta: Arc::new(RwLock::new(Arc::new(meta))),
        start,
        stats: Arc::new(StreamStats::new(ContainerId::new(ID), "web-1".into())),
        stop: stop.clone(),
        exited: exited.clone(),
        wake: crate::capture::watch::Wake::new(),
    };
    let (tx, rx) = queue::bounded(100, usize::MAX);
    let settings = ClientSettings {
        socket: root.join("docker.sock"),
        max_idle_connections: 1,
        idle_timeout: std::time::Duration::from_secs(1),
        request_timeout: std::time::Duration::from_secs(1),
        read_timeout: std::time::Duration::from_secs(1),
        api_version: Some("1.41".into()),
    };
    let ctx = Context::new(
        container,
        streams,
        1 << 20,
        tx,
        metrics.clone(),
        Shutdown::new(),
    );
    let follower = Follower {
        ctx,
        client: Arc::new(DockerClient::new(settings, metrics)),
        gate: Arc::new(Gate::new(1)),
        files: setup.files.then(|| FilesMode {
            root: Arc::from(root),
            required: true,
            watching: setup.watching,
            recheck: std::time::Duration::from_secs(60),
        }),
    };
    Run {
        follower,
        rx,
        stop,
        exited,
    }
}

pub(super) fn queued(rx: &Consumer) -> Vec<Record> {
    rx.take_batch(1000, 1 << 30, Instant::now())
}

fn lines(records: &[Record]) -> Vec<(Option<Stream>, &str)> {
    records
        .iter()
        .map(|r| (r.stream, r.message.as_str()))
        .collect()
}

pub(super) const BOTH: Streams = Streams {
    stdout: true,
    stderr: true,
};

fn sample_log(root: &Path) {
    write_log(
        root,
        &[
            ("stdout", 1, "one\n"),
            ("stderr", 2, "two\n"),
            ("stdout", 3, "thr"),
            ("stdout", 3, "ee\n"),
            ("stdout", 4, "four\n"),
        ],
    );
}

#[test]
fn an_exited_containers_log_is_read_to_its_end_as_records_of_the_container() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let run = follower(dir.path(), StartFrom::Beginning, BOTH);
    let outcome = run.follower.run();
    assert_eq!(outcome.reason, EndReason::Eof);
    let records = queued(&run.rx);
    assert_eq!(
        lines(&records),
        [
            (Some(Stream::Stdout), "one"),
            (Some(Stream::Stderr), "two"),
            (Some(Stream::Stdout), "three"),
            (Some(Stream::Stdout), "four"),
        ]
    );
    match &records[0].origin {
        Origin::Container(c) => assert_eq!((c.id.as_str(), c.name.as_str()), (ID, "web-1")),
        Origin::HostFile(h) => panic!("a container's record from host file {}", h.path),
    }
    let log_len = std::fs::metadata(
        dir.path()
            .join("containers")
            .join(ID)
            .join(format!("{ID}-json.log")),
    )
    .unwrap()
    .len();
    let last = outcome.position.unwrap();
    assert_eq!(last, records[3].position);
    assert_eq!(
        last.file.map(|f| f.offset),
        Some(log_len),
        "just past the last line"
    );
}

#[test]
fn streams_not_wanted_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let only_stderr = Streams {
        stdout: false,
        stderr: true,
    };
    let run = follower(dir.path(), StartFrom::Beginning, only_stderr);
    assert_eq!(run.follower.run().reason, EndReason::Eof);
    assert_eq!(lines(&queued(&run.rx)), [(Some(Stream::Stderr), "two")]);
}

#[test]
fn a_resume_after_a_file_position_delivers_only_what_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let first = follower(dir.path(), StartFrom::Beginning, BOTH);
    first.follower.run();
    let records = queued(&first.rx);
    let after_two: Position = records[1].position;
    assert!(
        after_two.file.is_some(),
        "files mode positions carry the offset"
    );
    let again = follower(dir.path(), StartFrom::After(after_two), BOTH);
    assert_eq!(again.follower.run().reason, EndReason::Eof);
    assert_eq!(
        lines(&queued(&again.rx)),
        [
            (Some(Stream::Stdout), "three"),
            (Some(Stream::Stdout), "four")
        ]
    );
}

#[test]
fn a_stopped_follower_ends_stopped_and_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let run = follower(dir.path(), StartFrom::Beginning, BOTH);
    run.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcome = run.follower.run();
    assert_eq!(outcome.reason, EndReason::Stopped);
    assert!(queued(&run.rx).is_empty());
}
