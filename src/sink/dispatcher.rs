//! The dispatcher: the one consumer of the bounded record queue. It cuts batches by
//! records, bytes and time, hands each batch to every sink (retrying transient failures
//! with backoff), and only then acknowledges the batch's positions, writing them to the
//! positions file at most every `positions.write_interval` but before more than one
//! batch's worth of delivered records would wait (README, Guarantees). It runs until every
//! producer has hung up, so a graceful stop drains the queue; after shutdown it gives up
//! at `pipeline.shutdown_timeout`, leaving the rest unacknowledged for the next run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::Consumer;
use super::{Batch, Sink, SinkError};
use crate::backoff::Backoff;
use crate::capture::record::Record;
use crate::config::{PipelineConfig, PositionsConfig};
use crate::health::DeliveryHealth;
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::shutdown::Shutdown;

/// The longest an idle dispatcher sleeps: positions changed by other threads with nothing
/// delivered (a destroyed container forgotten, a host file's start) are written this late
/// at most. Delivered ones follow `write_interval`.
const IDLE_TICK: Duration = Duration::from_secs(5);
/// How soon an idle dispatcher tries again a positions write that failed.
const RETRY_TICK: Duration = Duration::from_millis(250);

/// Batch limits and the drain budget, from `[pipeline]`.
#[derive(Clone, Debug)]
pub struct BatchSettings {
    pub records: usize,
    pub bytes: usize,
    pub timeout: Duration,
    pub shutdown_timeout: Duration,
    /// How often the positions file is fsynced.
    pub flush_interval: Duration,
    /// How long acknowledged positions may wait to be written (zero: after every batch).
    pub write_interval: Duration,
}

impl BatchSettings {
    /// From `[pipeline]` and `positions.flush_interval`.
    pub fn new(pipeline: &PipelineConfig, positions: &PositionsConfig) -> BatchSettings {
        BatchSettings {
            records: pipeline.batch_records,
            bytes: usize::try_from(pipeline.batch_bytes.get()).unwrap_or(usize::MAX),
            timeout: pipeline.batch_timeout.get(),
            shutdown_timeout: pipeline.shutdown_timeout.get(),
            flush_interval: positions.flush_interval.get(),
            write_interval: positions.write_interval.get(),
        }
    }
}

/// The queue's one consumer; runs on its own thread.
pub struct Dispatcher {
    rx: Consumer,
    sinks: Vec<Box<dyn Sink>>,
    settings: BatchSettings,
    metrics: Arc<Metrics>,
    positions: Arc<Positions>,
    health: Arc<DeliveryHealth>,
    shutdown: Shutdown,
    /// When this thread first saw the shutdown request.
    shutdown_seen: Option<Instant>,
    /// Last fsync of the positions file, and whether it was written since.
    last_sync: Instant,
    unsynced: bool,
    /// Delivered records whose positions are not written yet.
    unwritten: Unwritten,
    persist_failing: bool,
}

impl Dispatcher {
    /// A dispatcher of `rx` to `sinks` (delivered in this order), acknowledging to
    /// `positions`, reporting sink failures to `health`.
    pub fn new(
        rx: Consumer,
        sinks: Vec<Box<dyn Sink>>,
        settings: BatchSettings,
        positions: Arc<Positions>,
        health: Arc<DeliveryHealth>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Dispatcher {
        Dispatcher {
            rx,
            sinks,
            settings,
            metrics,
            positions,
            health,
            shutdown,
            shutdown_seen: None,
            last_sync: Instant::now(),
            unsynced: false,
            unwritten: Unwritten::default(),
            persist_failing: false,
        }
    }

    /// Runs until the queue is disconnected and empty (or the drain budget is spent);
    /// gives the sinks back (a reload keeps those whose configuration is unchanged).
    pub fn run(mut self) -> Vec<Box<dyn Sink>> {
        let mut dropped = 0usize;
        while let Some(records) = self.next_batch() {
            if self.deadline().is_some_and(|d| Instant::now() >= d) {
                // The budget is spent: writing more to the sinks that still answer would
                // only repeat it at the next start, as none of it can be acknowledged.
                self.rx.settle();
                dropped += records.len();
                continue;
            }
            self.metrics.batch_records.observe(records.len() as f64);
            // Records a rule dropped go to no sink, but their positions are acknowledged
            // with the batch, in queue order.
            let (records, order) = if records.iter().any(|r| r.dropped) {
                let order: Vec<_> = records
                    .iter()
                    .map(|r| (r.origin.clone(), r.position))
                    .collect();
                (
                    records.into_iter().filter(|r| !r.dropped).collect(),
                    Some(order),
                )
            } else {
                (records, None)
            };
            let taken = (
                records.len(),
                records.iter().map(Record::approx_bytes).sum(),
            );
            if self.unwritten.would_exceed(taken, &self.settings) {
                // A SIGKILL during this batch must repeat no more than one batch's worth.
                self.persist(false);
            }
            let batch = Batch::new(records);
            if batch.records.is_empty() || self.deliver(&batch) {
                match &order {
                    Some(order) => self.positions.ack_each(order.iter().map(|(o, p)| (o, p))),
                    None => self.positions.ack(&batch.records),
                }
                self.rx.settle();
                self.unwritten.add(taken);
                if self.unwritten.due(self.settings.write_interval) {
                    self.persist(false);
                }
            } else {
                self.rx.settle();
                dropped += batch.records.len();
            }
        }
        self.persist(true);
        if dropped > 0 {
            log::warn!(
                "dispatcher: shutdown budget spent; {dropped} records were not delivered and stay unacknowledged"
            );
        }
        self.sinks
    }

    /// Rewrites the positions file with what was acknowledged (see `Unwritten` for when);
    /// fsyncs it every `flush_interval` and when `force`d. A failed write
    /// (disk full, read-only, permission) is counted, shown on `/health`, and tried again
    /// after the next batch, or within `RETRY_TICK` when idle; capture goes on meanwhile.
    fn persist(&mut self, force: bool) {
        let sync = force || self.last_sync.elapsed() >= self.settings.flush_interval;
        if !sync && !self.positions.is_dirty() {
            self.unwritten = Unwritten::default();
            return;
        }
        match self.positions.persist(sync) {
            Ok(()) => {
                self.unwritten = Unwritten::default();
                self.metrics.positions_flushes.inc();
                if self.persist_failing {
                    log::info!("positions: written again");
                    self.health.set_positions_problem(None);
                }
                self.persist_failing = false;
                if sync {
                    self.last_sync = Instant::now();
                    self.unsynced = false;
                } else {
                    self.unsynced = true;
                }
            }
            Err(e) => {
                let problem = format!("{}: {e}", self.positions.path().display());
                if !self.persist_failing || force {
                    log::error!("positions: cannot write {problem}; will retry");
                }
                // Health first: whoever sees the count also sees the reason.
                self.health.set_positions_problem(Some(problem));
                self.metrics.positions_errors.inc();
                self.persist_failing = true;
                // Not due again until the next batch or idle tick (no busy retry loop).
                self.unwritten.since = None;
            }
        }
    }

    /// The end of the drain budget, once shutdown was requested.
    fn deadline(&mut self) -> Option<Instant> {
        if !self.shutdown.is_triggered() {
            return None;
        }
        let seen = *self.shutdown_seen.get_or_insert_with(Instant::now);
        Some(seen + self.settings.shutdown_timeout)
    }

    /// What an idle dispatcher has due: positions that waited `write_interval` (or changed
    /// with nothing delivered: a container forgotten), an fsync due. Returns when to look
    /// again, which must be in the future unless a write failed, or the wait would spin.
    fn idle_work(&mut self) -> Instant {
        let waiting =
            self.unwritten.since.is_some() && !self.unwritten.due(self.settings.write_interval);
        let sync_due = self.unsynced && self.last_sync.elapsed() >= self.settings.flush_interval;
        if sync_due || !waiting && (self.positions.is_dirty() || self.unsynced) {
            self.persist(false);
        }
        self.idle_wake()
    }

    /// When an idle dispatcher must look at its positions again: when the delivered ones
    /// waited `write_interval`, when the file is due to be fsynced, soon while a write
    /// fails (or positions changed with nothing delivered: a container forgotten), and
    /// otherwise after [`IDLE_TICK`] (positions changed by others meanwhile).
    fn idle_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + IDLE_TICK;
        if let Some(due) = self.unwritten.due_at(self.settings.write_interval) {
            wake = wake.min(due);
        }
        if self.unsynced && !self.persist_failing {
            wake = wake.min(self.last_sync + self.settings.flush_interval);
        }
        if self.persist_failing || self.positions.is_dirty() && self.unwritten.since.is_none() {
            wake = wake.min(now + RETRY_TICK);
        }
        wake
    }

    /// Collects the next batch; `None` once the producers are gone and the queue is empty.
    fn next_batch(&mut self) -> Option<Vec<Record>> {
        loop {
            let wake = self.idle_work();
            match self.rx.wait_nonempty(wake) {
                Ok(true) => break,
                Ok(false) => {}
                Err(_) => return None,
            }
        }
        let cut_at = Instant::now() + self.settings.timeout;
        Some(
            self.rx
                .take_batch(self.settings.records, self.settings.bytes, cut_at),
        )
    }

    /// Hands the batch to every sink, one after the other, each until it took every
    /// record (or rejected some for good). False when the drain budget ran out first: then
    /// nothing of the batch is acknowledged and it is read again on the next start.
    fn deliver(&mut self, batch: &Batch) -> bool {
        for i in 0..self.sinks.len() {
            if !self.deliver_to(i, batch) {
                return false;
            }
        }
        true
    }

    fn deliver_to(&mut self, i: usize, batch: &Batch) -> bool {
        let name = self.sinks[i].name().to_string();
        let started = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut subset: Option<Batch> = None;
        let mut logged = false;
        loop {
            let pending = subset.as_ref().unwrap_or(batch);
            let deadline = self.deadline();
            let (retry_after, message) = match self.sinks[i].write_batch(pending, deadline) {
                Ok(()) => {
                    self.health.sink_ok(&name);
                    let m = &self.metrics;
                    m.sink_records
                        .with_label_values(&[&name])
                        .inc_by(pending.records.len() as u64);
                    m.sink_batch_seconds
                        .with_label_values(&[&name])
                        .observe(started.elapsed().as_secs_f64());
                    return true;
                }
                Err(SinkError::Rejected(reason)) => {
                    self.metrics.sink_errors.with_label_values(&[&name]).inc();
                    self.metrics
                        .sink_rejected_records
                        .with_label_values(&[&name])
                        .inc_by(pending.records.len() as u64);
                    log::error!(
                        "sink {name}: {} records rejected and dropped: {reason}",
                        pending.records.len()
                    );
                    return true;
                }
                Err(SinkError::PartlyRejected { rejected, message }) => {
                    let rejected = rejected.min(pending.records.len());
                    let m = &self.metrics;
                    m.sink_errors.with_label_values(&[&name]).inc();
                    m.sink_rejected_records
                        .with_label_values(&[&name])
                        .inc_by(rejected as u64);
                    m.sink_records
                        .with_label_values(&[&name])
                        .inc_by((pending.records.len() - rejected) as u64);
                    log::error!(
                        "sink {name}: {rejected} of {} records rejected and dropped, the rest taken: {message}",
                        pending.records.len()
                    );
                    return true;
                }
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => (retry_after, message),
                Err(SinkError::Partial {
                    retry,
                    rejected,
                    message,
                    retry_after,
                }) => {
                    let m = &self.metrics;
                    let settled = pending.records.len().saturating_sub(retry.len());
                    let rejected = rejected.min(settled);
                    m.sink_records
                        .with_label_values(&[&name])
                        .inc_by((settled - rejected) as u64);
                    if rejected > 0 {
                        m.sink_rejected_records
                            .with_label_values(&[&name])
                            .inc_by(rejected as u64);
                        log::error!(
                            "sink {name}: {rejected} records rejected and dropped: {message}"
                        );
                    }
                    // Progress: the sink works, so the rest goes after the shortest delay.
                    if settled > 0 {
                        backoff.reset();
                    }
                    subset = Some(pending.subset(&retry));
                    (
                        retry_after,
                        format!("{} records to retry: {message}", retry.len()),
                    )
                }
            };
            self.metrics.sink_errors.with_label_values(&[&name]).inc();
            let at_once = self.sinks[i].degrades_at_once();
            self.health.sink_failing(&name, &message, at_once);
            let delay = backoff.next_at_least(retry_after);
            if let Some(deadline) = self.deadline() {
                if Instant::now() + delay > deadline {
                    log::error!("sink {name}: {message}; shutdown budget spent, giving up");
                    return false;
                }
            }
            // One warning per failing batch; the retries are counted.
            if !logged {
                log::warn!("sink {name}: {message}; retrying (first retry in {delay:?})");
                logged = true;
            }
            self.metrics.sink_retries.with_label_values(&[&name]).inc();
            if self.shutdown.wait_timeout(delay) {
                // Shutdown began during the wait: sleep out the delay, bounded by the budget.
                let until = self
                    .deadline()
                    .map_or(delay, |d| d.saturating_duration_since(Instant::now()));
                std::thread::sleep(delay.min(until).min(Duration::from_millis(250)));
            }
        }
    }
}

/// Delivered records whose positions the file does not hold yet. The file is rewritten
/// once the oldest of them waited `write_interval`, and before a batch that would make
/// them, with the batch, more than one batch's worth (`pipeline.batch_records`,
/// `batch_bytes`): so a SIGKILL repeats at most one batch, as when the file was rewritten
/// after every batch, while a trickle of one-record batches from quiet containers costs
/// a few writes a second instead of one per record.
#[derive(Debug, Default)]
struct Unwritten {
    records: usize,
    bytes: usize,
    since: Option<Instant>,
}

impl Unwritten {
    /// Whether a batch of `taken` (records, bytes) would take what waits past one batch.
    fn would_exceed(&self, taken: (usize, usize), limits: &BatchSettings) -> bool {
        self.records > 0
            && (self.records + taken.0 > limits.records || self.bytes + taken.1 > limits.bytes)
    }

    fn add(&mut self, taken: (usize, usize)) {
        self.records += taken.0;
        self.bytes += taken.1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// When what waits must be written: `interval` after the oldest of it was delivered.
    fn due_at(&self, interval: Duration) -> Option<Instant> {
        self.since.map(|t| t + interval)
    }

    fn due(&self, interval: Duration) -> bool {
        self.due_at(interval).is_some_and(|t| Instant::now() >= t)
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "dispatcher_write_tests.rs"]
mod write_tests;
