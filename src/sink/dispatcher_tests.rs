//! The dispatcher's delivery, with fake sinks that answer from a script: every sink gets
//! the batch before positions advance, a partial failure retries only the failed
//! records, a rejection is counted and dropped, and the shutdown budget leaves an
//! undelivered batch unacknowledged for the next run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::*;
use crate::capture::record::{sample_records, ContainerId, Position};
use crate::capture::timestamp::Timestamp;
use crate::sink::queue;

/// What a fake sink was handed: the messages of each call, in order.
type Calls = Arc<Mutex<Vec<Vec<String>>>>;

/// A sink that answers each call from `script`, then with `then` forever.
struct Scripted {
    name: String,
    script: VecDeque<Result<(), SinkError>>,
    then: fn() -> Result<(), SinkError>,
    calls: Calls,
}

impl Sink for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, batch: &Batch, _: Option<Instant>) -> Result<(), SinkError> {
        let messages = batch.records.iter().map(|r| r.message.clone()).collect();
        self.calls.lock().push(messages);
        self.script.pop_front().unwrap_or_else(self.then)
    }
}

fn ok() -> Result<(), SinkError> {
    Ok(())
}

fn down() -> Result<(), SinkError> {
    Err(SinkError::transient("connection refused"))
}

pub(super) fn sink(
    name: &str,
    script: Vec<Result<(), SinkError>>,
    then: fn() -> Result<(), SinkError>,
) -> (Box<dyn Sink>, Calls) {
    let calls = Calls::default();
    let sink = Scripted {
        name: name.to_owned(),
        script: script.into(),
        then,
        calls: calls.clone(),
    };
    (Box::new(sink), calls)
}

/// Records "m 0" .. "m {n-1}" of container "c", record i at position (i + 1, 1).
pub(super) fn records(n: usize) -> Vec<Record> {
    let mut records = sample_records(n, "m");
    for (i, r) in records.iter_mut().enumerate() {
        r.position = Position {
            time: Timestamp::from_nanos(i as i64 + 1),
            frames_at_time: 1,
            file: None,
            marks: [None; 2],
        };
    }
    records
}

struct Run {
    positions: Arc<Positions>,
    health: Arc<DeliveryHealth>,
    metrics: Arc<Metrics>,
}

impl Run {
    fn acked(&self) -> Option<i64> {
        self.positions
            .get(&ContainerId::new("c"))
            .map(|p| p.time.as_nanos())
    }

    fn counter(&self, v: &prometheus::IntCounterVec, sink: &str) -> u64 {
        v.with_label_values(&[sink]).get()
    }
}

/// Queues `records` in one batch, runs a dispatcher to `sinks` until it returns (the
/// producer is gone; `shutdown` may end it earlier), and hands back what it acknowledged.
fn dispatch(sinks: Vec<Box<dyn Sink>>, records: Vec<Record>, shutdown: Shutdown) -> Run {
    let (tx, rx) = queue::bounded(64, usize::MAX);
    let positions = Arc::new(Positions::in_memory(Timestamp::from_nanos(0)));
    let health = Arc::new(DeliveryHealth::default());
    let metrics = Arc::new(Metrics::new().unwrap());
    let settings = BatchSettings {
        records: 100,
        bytes: 1 << 20,
        timeout: Duration::from_millis(1),
        shutdown_timeout: Duration::from_millis(300),
        flush_interval: Duration::from_secs(1),
        write_interval: Duration::ZERO,
    };
    let d = Dispatcher::new(
        rx,
        sinks,
        settings,
        positions.clone(),
        health.clone(),
        metrics.clone(),
        shutdown,
    );
    let mut batch = records;
    tx.send_all(&mut batch).unwrap();
    drop(tx);
    d.run();
    Run {
        positions,
        health,
        metrics,
    }
}

fn messages(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m {i}")).collect()
}

#[test]
fn every_sink_takes_the_batch_before_its_positions_advance() {
    let (a, a_calls) = sink("a", vec![], ok);
    let (b, b_calls) = sink("b", vec![], ok);
    let run = dispatch(vec![a, b], records(3), Shutdown::new());
    assert_eq!(*a_calls.lock(), vec![messages(0..3)]);
    assert_eq!(*b_calls.lock(), vec![messages(0..3)]);
    assert_eq!(run.acked(), Some(3), "the last record's position");
    assert_eq!(run.counter(&run.metrics.sink_records, "b"), 3);
}

#[test]
fn a_partial_failure_retries_only_the_failed_records() {
    let partial = Err(SinkError::Partial {
        retry: vec![1, 2],
        rejected: 0,
        message: "2 of 4 failed".into(),
        retry_after: None,
    });
    let (a, a_calls) = sink("a", vec![partial], ok);
    let (b, b_calls) = sink("b", vec![], ok);
    let run = dispatch(vec![a, b], records(4), Shutdown::new());
    assert_eq!(
        *a_calls.lock(),
        vec![messages(0..4), vec!["m 1".to_owned(), "m 2".to_owned()]]
    );
    assert_eq!(
        *b_calls.lock(),
        vec![messages(0..4)],
        "the next sink gets the whole batch, once"
    );
    assert_eq!(run.counter(&run.metrics.sink_records, "a"), 4, "2 + 2");
    assert_eq!(run.counter(&run.metrics.sink_retries, "a"), 1);
    assert_eq!(run.counter(&run.metrics.sink_errors, "a"), 1);
    assert_eq!(run.acked(), Some(4));
    assert!(run.health.failing(Duration::ZERO).is_empty(), "recovered");
}

#[test]
fn a_partial_failure_counts_what_was_rejected_for_good() {
    let partial = Err(SinkError::Partial {
        retry: vec![3],
        rejected: 1,
        message: "a part pushed, 1 refused".into(),
        retry_after: None,
    });
    let (a, a_calls) = sink("a", vec![partial], ok);
    let run = dispatch(vec![a], records(4), Shutdown::new());
    assert_eq!(
        *a_calls.lock(),
        vec![messages(0..4), vec!["m 3".to_owned()]]
    );
    assert_eq!(run.counter(&run.metrics.sink_rejected_records, "a"), 1);
    assert_eq!(run.counter(&run.metrics.sink_records, "a"), 3, "2 + 1");
    assert_eq!(run.acked(), Some(4));
}

#[test]
fn a_transient_failure_is_retried_until_the_sink_takes_the_batch() {
    let (a, a_calls) = sink("a", vec![down(), down()], ok);
    let run = dispatch(vec![a], records(2), Shutdown::new());
    assert_eq!(*a_calls.lock(), vec![messages(0..2); 3]);
    assert_eq!(run.counter(&run.metrics.sink_retries, "a"), 2);
    assert_eq!(run.counter(&run.metrics.sink_records, "a"), 2);
    assert_eq!(run.acked(), Some(2));
}

#[test]
fn a_rejected_batch_is_counted_and_dropped_and_the_next_sink_still_gets_it() {
    let (a, a_calls) = sink("a", vec![Err(SinkError::Rejected("400 bad".into()))], ok);
    let (b, b_calls) = sink("b", vec![], ok);
    let run = dispatch(vec![a, b], records(3), Shutdown::new());
    assert_eq!(a_calls.lock().len(), 1, "never retried");
    assert_eq!(*b_calls.lock(), vec![messages(0..3)]);
    let m = &run.metrics;
    assert_eq!(run.counter(&m.sink_rejected_records, "a"), 3);
    assert_eq!(run.counter(&m.sink_records, "a"), 0);
    assert_eq!(run.counter(&m.sink_retries, "a"), 0);
    assert_eq!(
        run.acked(),
        Some(3),
        "a rejection is final: re-reading would be rejected again"
    );
}

/// Loki's 400 keeps the acceptable entries of a push: only the refused ones count as
/// rejected, the rest as delivered, and the batch is not sent again (it would repeat them).
#[test]
fn a_partly_rejected_batch_counts_only_the_refused_records_and_is_not_resent() {
    let refusal = SinkError::PartlyRejected {
        rejected: 2,
        message: "HTTP 400: total ignored: 2 out of 5".into(),
    };
    let (a, a_calls) = sink("a", vec![Err(refusal)], ok);
    let (b, b_calls) = sink("b", vec![], ok);
    let run = dispatch(vec![a, b], records(5), Shutdown::new());
    assert_eq!(a_calls.lock().len(), 1, "never sent again");
    assert_eq!(*b_calls.lock(), vec![messages(0..5)]);
    let m = &run.metrics;
    assert_eq!(run.counter(&m.sink_rejected_records, "a"), 2);
    assert_eq!(run.counter(&m.sink_records, "a"), 3);
    assert_eq!(run.counter(&m.sink_retries, "a"), 0);
    assert_eq!(run.acked(), Some(5));
}

#[test]
fn the_shutdown_budget_leaves_an_undelivered_batch_unacknowledged() {
    let (a, a_calls) = sink("a", vec![], ok);
    let (b, b_calls) = sink("b", vec![], down);
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let calls = b_calls.clone();
    let run = std::thread::scope(|s| {
        s.spawn(move || {
            // Shutdown begins once the failing sink was tried.
            while calls.lock().is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
            trigger.trigger();
        });
        dispatch(vec![a, b], records(3), shutdown)
    });
    assert_eq!(a_calls.lock().len(), 1);
    assert!(!b_calls.lock().is_empty());
    assert_eq!(
        run.acked(),
        None,
        "sink a took the batch, sink b did not: nothing is acknowledged"
    );
    assert_eq!(run.health.failing(Duration::ZERO), vec!["b".to_owned()]);
    assert_eq!(run.counter(&run.metrics.sink_records, "b"), 0);
}

/// Waits (bounded: a hang catcher, not a timing) until `cond` holds.
pub(super) fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(super) fn settings() -> BatchSettings {
    BatchSettings {
        records: 100,
        bytes: 1 << 20,
        timeout: Duration::from_millis(1),
        shutdown_timeout: Duration::from_millis(300),
        flush_interval: Duration::from_secs(1),
        write_interval: Duration::ZERO,
    }
}

/// While a sink fails, the batch being retried is still pending: the queue is empty, but
/// the oldest unacknowledged record is the batch's (what `lag_seconds` is computed from).
#[test]
fn a_batch_being_retried_counts_as_pending() {
    let (tx, rx) = queue::bounded(64, usize::MAX);
    let observer = rx.observer();
    let (s, calls) = sink("loki-1", vec![], down);
    let health = Arc::new(DeliveryHealth::default());
    let shutdown = Shutdown::new();
    let d = Dispatcher::new(
        rx,
        vec![s],
        settings(),
        Arc::new(Positions::in_memory(Timestamp::from_nanos(0))),
        health.clone(),
        Arc::new(Metrics::new().unwrap()),
        shutdown.clone(),
    );
    let thread = std::thread::spawn(move || d.run());
    tx.send_all(&mut records(3)).unwrap();
    eventually("the sink was tried twice", || calls.lock().len() >= 2);
    let seen = observer.snapshot();
    assert_eq!(seen.records, 0, "taken from the queue");
    assert_eq!(
        seen.oldest,
        Some(Timestamp::from_nanos(0)),
        "but not acknowledged"
    );
    assert!(health
        .failing(Duration::ZERO)
        .contains(&"loki-1".to_owned()));
    shutdown.trigger();
    drop(tx);
    thread.join().unwrap();
    assert_eq!(
        observer.snapshot().oldest,
        None,
        "given up at the budget's end"
    );
}

/// The positions file cannot be written (its directory is a file): delivery goes on, the
/// failures are counted and shown on /health; once the directory is back, saving resumes
/// by itself and the problem clears.
#[test]
fn positions_that_cannot_be_saved_do_not_stop_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("d");
    let path = blocked.join("positions.json");
    let positions = Arc::new(Positions::open(&path, Timestamp::from_nanos(0)).unwrap());
    // Opening checked that it can write there; now take the directory away.
    if blocked.exists() {
        std::fs::remove_dir_all(&blocked).unwrap();
    }
    std::fs::write(&blocked, "not a directory").unwrap();
    let (tx, rx) = queue::bounded(64, usize::MAX);
    let (s, calls) = sink("file-0", vec![], ok);
    let health = Arc::new(DeliveryHealth::default());
    let metrics = Arc::new(Metrics::new().unwrap());
    let d = Dispatcher::new(
        rx,
        vec![s],
        settings(),
        positions.clone(),
        health.clone(),
        metrics.clone(),
        Shutdown::new(),
    );
    let thread = std::thread::spawn(move || d.run());
    tx.send_all(&mut records(3)).unwrap();
    eventually("delivered and acknowledged in memory", || {
        positions.get(&ContainerId::new("c")).is_some() && !calls.lock().is_empty()
    });
    eventually("the failure counted", || {
        metrics.positions_errors.get() >= 1
    });
    // Retried at each idle tick (250 ms), not in a busy loop: a spinning dispatcher
    // counts thousands of failures in this pause.
    std::thread::sleep(Duration::from_millis(300));
    let errors = metrics.positions_errors.get();
    assert!(errors < 50, "{errors} failed writes: a busy retry loop");
    let flushes = metrics.positions_flushes.get();
    let problem = || {
        health
            .reasons()
            .iter()
            .any(|r| r.starts_with("positions cannot be saved"))
    };
    assert!(problem(), "{:?}", health.reasons());
    assert!(!path.exists());

    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    eventually("saved again without a new batch", || path.exists());
    eventually("the problem cleared", || !problem());
    assert!(metrics.positions_flushes.get() > flushes);
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("\"c\""), "{saved}");
    drop(tx);
    thread.join().unwrap();
}

/// Records a rule dropped reach no sink, and their positions are acknowledged in queue
/// order: the last record, dropped, sets the container's position.
#[test]
fn dropped_records_reach_no_sink_but_their_positions_advance() {
    let (a, calls) = sink("a", vec![], ok);
    let mut recs = records(4);
    recs[1].dropped = true;
    recs[3].dropped = true;
    let run = dispatch(vec![a], recs, Shutdown::new());
    assert_eq!(
        *calls.lock(),
        vec![vec!["m 0".to_owned(), "m 2".to_owned()]]
    );
    assert_eq!(run.acked(), Some(4), "the dropped last record's position");

    let (b, calls) = sink("b", vec![], ok);
    let mut recs = records(2);
    recs[0].dropped = true;
    recs[1].dropped = true;
    let run = dispatch(vec![b], recs, Shutdown::new());
    assert!(
        calls.lock().is_empty(),
        "a batch of dropped records calls no sink"
    );
    assert_eq!(run.acked(), Some(2));
}
