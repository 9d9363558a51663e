//! When the dispatcher writes the positions file: a trickle of one-record batches waits
//! for `write_interval`, but never more than one batch's worth of delivered records waits
//! unwritten (the SIGKILL bound of the README's Guarantees); `write_interval = 0` writes
//! after every batch; positions that wait are written at the interval without new batches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::tests::{eventually, records, settings, sink};
use super::*;
use crate::capture::record::ContainerId;
use crate::capture::timestamp::Timestamp;
use crate::sink::queue;

/// Numbers the dispatcher threads, so a test finds its own in /proc.
static NAMES: AtomicUsize = AtomicUsize::new(0);

/// A dispatcher writing to a positions file in a temporary directory, fed one record at a
/// time: each is sent once the one before was acknowledged, so each is its own batch.
struct Trickle {
    dir: tempfile::TempDir,
    positions: Arc<Positions>,
    metrics: Arc<Metrics>,
    tx: Option<queue::Producer>,
    thread: Option<std::thread::JoinHandle<Vec<Box<dyn Sink>>>>,
}

impl Trickle {
    fn start(settings: BatchSettings) -> Trickle {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let positions = Arc::new(Positions::open(&path, Timestamp::from_nanos(0)).unwrap());
        let metrics = Arc::new(Metrics::new().unwrap());
        let (tx, rx) = queue::bounded(64, usize::MAX);
        let (s, _) = sink("file-0", vec![], || Ok(()));
        let d = Dispatcher::new(
            rx,
            vec![s],
            settings,
            positions.clone(),
            Arc::new(DeliveryHealth::default()),
            metrics.clone(),
            Shutdown::new(),
        );
        Trickle {
            dir,
            positions,
            metrics,
            tx: Some(tx),
            thread: Some(
                std::thread::Builder::new()
                    .name(format!("dw-{}", NAMES.fetch_add(1, Ordering::Relaxed)))
                    .spawn(move || d.run())
                    .unwrap(),
            ),
        }
    }

    /// CPU time (clock ticks, utime + stime) the dispatcher's thread has used so far.
    fn cpu_ticks(&self) -> u64 {
        let name = self
            .thread
            .as_ref()
            .unwrap()
            .thread()
            .name()
            .unwrap()
            .to_owned();
        for task in std::fs::read_dir("/proc/thread-self/..").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
                // After the ")" closing comm: state is field 3; utime, stime are 14, 15.
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                return f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
            }
        }
        panic!("no thread named {name}");
    }

    /// Sends record `i` (of `records`) alone and waits until it is acknowledged.
    fn one(&self, all: &[Record], i: usize) {
        let tx = self.tx.as_ref().unwrap();
        tx.send_all(&mut vec![all[i].clone()]).unwrap();
        let want = all[i].position.time;
        eventually("the record acknowledged", || {
            self.positions.get(&ContainerId::new("c")).map(|p| p.time) == Some(want)
        });
    }

    /// The time (record number + 1) the positions file holds for container "c". Read
    /// from a copy: opening the live file would write beside the dispatcher.
    fn written(&self) -> Option<i64> {
        let copy = tempfile::tempdir().unwrap();
        let path = copy.path().join("positions.json");
        match std::fs::copy(self.dir.path().join("positions.json"), &path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("copy positions: {e}"),
        }
        let saved = Positions::open(&path, Timestamp::from_nanos(0)).unwrap();
        saved.get(&ContainerId::new("c")).map(|p| p.time.as_nanos())
    }

    fn stop(mut self) -> Option<i64> {
        drop(self.tx.take());
        self.thread.take().unwrap().join().unwrap();
        self.written()
    }
}

/// With an interval no test outlives, only the one-batch bound writes: before the record
/// that would make six wait with a limit of five, the five acknowledged are written.
#[test]
fn at_most_one_batch_of_records_waits_to_be_written() {
    let mut s = settings();
    s.records = 5;
    s.write_interval = Duration::from_secs(3600);
    let t = Trickle::start(s);
    let all = records(12);
    for i in 0..12 {
        t.one(&all, i);
        // Unwritten now: the records after the last multiple of five, up to i.
        let expect = (i / 5 * 5) as i64;
        assert_eq!(t.written().unwrap_or(0), expect, "after record {i}");
    }
    assert_eq!(
        t.metrics.positions_flushes.get(),
        2,
        "before records 5 and 10"
    );
    assert_eq!(t.stop(), Some(12), "all written at the end");
}

/// The same bound counted in bytes (`batch_bytes`).
#[test]
fn at_most_one_batch_of_bytes_waits_to_be_written() {
    let all = records(6);
    let mut s = settings();
    s.bytes = all[0].approx_bytes() * 3;
    s.write_interval = Duration::from_secs(3600);
    let t = Trickle::start(s);
    for i in 0..6 {
        t.one(&all, i);
    }
    assert_eq!(t.written(), Some(3), "written before the fourth");
    assert_eq!(t.stop(), Some(6));
}

#[test]
fn a_zero_interval_writes_after_every_batch() {
    let t = Trickle::start(settings());
    let all = records(4);
    for i in 0..4 {
        t.one(&all, i);
        // Record i - 1 was written before record i was taken from the queue.
        assert!(t.written().unwrap_or(0) >= i as i64, "after record {i}");
    }
    assert_eq!(t.stop(), Some(4));
}

/// Acknowledged positions are written once the interval passed, with no batch after them.
#[test]
fn waiting_positions_are_written_at_the_interval() {
    let mut s = settings();
    s.write_interval = Duration::from_millis(100);
    let t = Trickle::start(s);
    let all = records(3);
    for i in 0..3 {
        t.one(&all, i);
    }
    eventually("written without another batch", || t.written() == Some(3));
    t.stop();
}

/// Positions waiting for `write_interval` while an fsync is due (`flush_interval` passed
/// after a write without one): the idle dispatcher writes them with the fsync and sleeps;
/// it does not spin until the interval. Its thread's CPU time over the wait is the measure (a spin takes a core; an
/// idle thread takes nothing, however loaded the machine).
#[test]
fn an_idle_dispatcher_sleeps_while_positions_wait_and_a_sync_is_due() {
    let mut s = settings();
    s.records = 1;
    // Wide margins: the second write must come within `flush_interval` of the start to be
    // one without an fsync, however slow a loaded machine is.
    s.write_interval = Duration::from_secs(60);
    s.flush_interval = Duration::from_secs(2);
    let t = Trickle::start(s);
    let all = records(2);
    // The second record's batch writes the first's position first, without an fsync.
    t.one(&all, 0);
    t.one(&all, 1);
    assert_eq!(t.written(), Some(1));
    let before = t.cpu_ticks();
    std::thread::sleep(Duration::from_millis(3500));
    let used = t.cpu_ticks() - before;
    // Clock ticks are 10 ms: a spin from the fsync's due time (2 s) would show 100+ here.
    assert!(
        used <= 5,
        "the idle dispatcher used {used} ticks of CPU in 3.5 s"
    );
    assert_eq!(t.written(), Some(2), "written with the fsync that came due");
    assert_eq!(t.stop(), Some(2));
}

#[test]
fn a_batch_larger_than_the_limits_alone_writes_nothing_first() {
    let limits = settings();
    let nothing = Unwritten::default();
    assert!(!nothing.would_exceed((limits.records * 2, limits.bytes * 2), &limits));
    let mut one = Unwritten::default();
    one.add((1, 10));
    assert!(!one.would_exceed((limits.records - 1, 10), &limits));
    assert!(one.would_exceed((limits.records, 10), &limits));
    assert!(one.would_exceed((1, limits.bytes), &limits));
    assert!(one.due_at(Duration::from_secs(1)).is_some());
}
