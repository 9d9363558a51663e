//! The bounded record queue between the followers and the dispatcher. Producers hand over
//! all the records of one read at once and block while the queue is full (backpressure);
//! the consumer takes whole batches. One lock per read and per batch, and a wake-up only
//! when the consumer is waiting for what just arrived: a per-record channel costs more in
//! futex wake-ups than the rest of the pipeline together.
//!
//! The queue is bounded twice, by records and by bytes (`pipeline.queue_records`,
//! `pipeline.queue_bytes`): a record waits until both have room for it, except into an
//! empty queue, so a single record larger than the byte bound still passes alone. It also
//! knows every record that is read but not yet acknowledged: those queued, those of
//! producers waiting for room, and the consumer's batch in flight until it is settled.
//! [`Observer::snapshot`] reads that live, for the gauges `/metrics` shows.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::capture::record::Record;
use crate::capture::timestamp::Timestamp;

struct Inner {
    items: VecDeque<Record>,
    /// Sum of `approx_bytes` of `items`.
    bytes: usize,
    producers: usize,
    consumer_gone: bool,
    /// The consumer sleeps until `items.len() >= want` (0 = not sleeping).
    want: usize,
    /// When the last batch was taken: a batch soon after it lingers for more.
    last_cut: Option<Instant>,
    /// Producers waiting for room, first come first served: a ticket and the oldest
    /// record each holds. Only the first may queue, so a big record is not overtaken for
    /// ever by producers of small ones.
    waiting: VecDeque<(u64, Timestamp)>,
    next_ticket: u64,
    /// The oldest record of the consumer's batch, until the consumer settles it.
    in_flight: Option<Timestamp>,
}

struct Shared {
    inner: Mutex<Inner>,
    capacity: usize,
    max_bytes: usize,
    not_empty: Condvar,
    not_full: Condvar,
}

impl Shared {
    /// Whether `r` may be queued now: both bounds have room, or the queue is empty.
    fn has_room(&self, inner: &Inner, r: &Record) -> bool {
        inner.items.is_empty()
            || (inner.items.len() < self.capacity
                && inner.bytes.saturating_add(r.approx_bytes()) <= self.max_bytes)
    }
}

/// How long the consumer waits for the next record before cutting a batch early.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// A record that comes this long after the last batch found the pipeline quiet: it goes out
/// at once instead of lingering (the first line of a new container, a sporadic line).
const QUIET: std::time::Duration = std::time::Duration::from_millis(50);

/// Creates a queue holding at most `capacity` records and `max_bytes` bytes (as counted by
/// [`Record::approx_bytes`]).
pub fn bounded(capacity: usize, max_bytes: usize) -> (Producer, Consumer) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            items: VecDeque::with_capacity(capacity.min(4096)),
            bytes: 0,
            producers: 1,
            consumer_gone: false,
            want: 0,
            last_cut: None,
            waiting: VecDeque::new(),
            next_ticket: 0,
            in_flight: None,
        }),
        capacity: capacity.max(1),
        max_bytes: max_bytes.max(1),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    (Producer(shared.clone()), Consumer(shared))
}

/// The consumer has hung up; the records were not queued.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// Sending half; cloning adds a producer. The queue is disconnected when all are dropped.
pub struct Producer(Arc<Shared>);

impl Clone for Producer {
    fn clone(&self) -> Producer {
        self.0.inner.lock().producers += 1;
        Producer(self.0.clone())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let mut inner = self.0.inner.lock();
        inner.producers -= 1;
        if inner.producers == 0 {
            self.0.not_empty.notify_all();
        }
    }
}

impl Producer {
    /// Moves every record of `records` into the queue, in order, blocking while it is full.
    /// Producers that had to wait are served in the order they came.
    pub fn send_all(&self, records: &mut Vec<Record>) -> Result<(), Closed> {
        let mut drain = records.drain(..);
        let mut inner = self.0.inner.lock();
        let mut ticket: Option<u64> = None;
        loop {
            if inner.consumer_gone {
                if let Some(t) = ticket {
                    inner.waiting.retain(|w| w.0 != t);
                }
                return Err(Closed);
            }
            let my_turn = inner.waiting.front().map(|w| w.0) == ticket;
            if my_turn {
                while let Some(next) = drain.as_slice().first() {
                    if !self.0.has_room(&inner, next) {
                        break;
                    }
                    let bytes = next.approx_bytes();
                    if let Some(r) = drain.next() {
                        inner.bytes += bytes;
                        inner.items.push_back(r);
                    }
                }
            }
            if inner.want > 0 && inner.items.len() >= inner.want {
                self.0.not_empty.notify_one();
            }
            let Some(oldest) = drain.as_slice().iter().map(|r| r.time).min() else {
                if ticket.is_some() {
                    // Done: the next waiter's turn.
                    inner.waiting.pop_front();
                    self.0.not_full.notify_all();
                }
                return Ok(());
            };
            // Full (or others were first): let the consumer take a batch even if it wanted
            // more, and show the records held here to the gauges while waiting.
            match ticket {
                Some(t) => {
                    if let Some(w) = inner.waiting.iter_mut().find(|w| w.0 == t) {
                        w.1 = oldest;
                    }
                }
                None => {
                    let t = inner.next_ticket;
                    inner.next_ticket += 1;
                    inner.waiting.push_back((t, oldest));
                    ticket = Some(t);
                }
            }
            self.0.not_empty.notify_one();
            self.0.not_full.wait(&mut inner);
        }
    }
}

/// What the queue holds now, and the oldest record not yet settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Records queued.
    pub records: usize,
    /// Their bytes, as the byte bound counts them.
    pub bytes: usize,
    /// The time of the oldest record queued, held by a waiting producer, or in the batch
    /// in flight; `None` when there is none.
    pub oldest: Option<Timestamp>,
}

/// A read-only view of the queue, for the gauges.
#[derive(Clone)]
pub struct Observer(Arc<Shared>);

impl Observer {
    /// The queue's state now. Looks at every queued record (a scrape, not a hot path).
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.0.inner.lock();
        let oldest = inner
            .items
            .iter()
            .map(|r| r.time)
            .chain(inner.waiting.iter().map(|w| w.1))
            .chain(inner.in_flight)
            .min();
        Snapshot {
            records: inner.items.len(),
            bytes: inner.bytes,
            oldest,
        }
    }
}

/// Receiving half, owned by the dispatcher.
pub struct Consumer(Arc<Shared>);

impl Drop for Consumer {
    fn drop(&mut self) {
        self.0.inner.lock().consumer_gone = true;
        self.0.not_full.notify_all();
    }
}

impl Consumer {
    /// A view of this queue for the gauges.
    pub fn observer(&self) -> Observer {
        Observer(self.0.clone())
    }

    /// The batch last taken is delivered (or given up): it no longer counts as pending.
    pub fn settle(&self) {
        self.0.inner.lock().in_flight = None;
    }

    /// Waits until a record is queued (`Ok(true)`), `until` passes (`Ok(false)`), or every
    /// producer is gone and the queue is empty (`Err(Closed)`).
    pub fn wait_nonempty(&self, until: Instant) -> Result<bool, Closed> {
        let mut inner = self.0.inner.lock();
        loop {
            if !inner.items.is_empty() {
                return Ok(true);
            }
            if inner.producers == 0 {
                return Err(Closed);
            }
            inner.want = 1;
            let timed_out = self.0.not_empty.wait_until(&mut inner, until).timed_out();
            inner.want = 0;
            if timed_out {
                return Ok(!inner.items.is_empty());
            }
        }
    }

    /// Takes up to `max_records` records (and about `max_bytes`), waiting until that many
    /// are queued, `cut_at` passes, or the producers are gone. The batch counts as in
    /// flight (see [`Observer::snapshot`]) until [`Consumer::settle`].
    ///
    /// It waits for more only while more keep coming: when nothing arrived for `LINGER`,
    /// the batch is cut at once, so a quiet container's line is not held back for the
    /// whole `batch_timeout`, while a busy stream still fills large batches. When the
    /// pipeline was quiet (no batch for `QUIET`), or the queue is full (a producer waits),
    /// it does not wait at all.
    pub fn take_batch(&self, max_records: usize, max_bytes: usize, cut_at: Instant) -> Vec<Record> {
        let mut inner = self.0.inner.lock();
        let mut seen = inner.items.len();
        let linger = seen == 0 || inner.last_cut.is_some_and(|t| t.elapsed() < QUIET);
        while linger
            && inner.items.len() < max_records
            && inner.bytes < max_bytes
            && inner.waiting.is_empty()
            && inner.producers > 0
        {
            inner.want = max_records.min(self.0.capacity);
            let until = cut_at.min(Instant::now() + LINGER);
            let timed_out = self.0.not_empty.wait_until(&mut inner, until).timed_out();
            inner.want = 0;
            if timed_out && (inner.items.len() == seen || Instant::now() >= cut_at) {
                break;
            }
            seen = inner.items.len();
        }
        let mut out = Vec::with_capacity(inner.items.len().min(max_records));
        let mut bytes = 0;
        loop {
            // Past the limits, go on only to finish a group (see `Record::continues`).
            let in_group = out.last().is_some_and(|r: &Record| r.continues);
            if (out.len() >= max_records || bytes >= max_bytes) && !in_group {
                break;
            }
            match inner.items.pop_front() {
                Some(r) => {
                    bytes += r.approx_bytes();
                    out.push(r);
                }
                None => break,
            }
        }
        inner.bytes -= bytes;
        inner.in_flight = out.iter().map(|r| r.time).min();
        inner.last_cut = Some(Instant::now());
        drop(inner);
        self.0.not_full.notify_all();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::sample_records;
    use std::time::Duration;

    fn records(n: usize) -> Vec<Record> {
        sample_records(n, "r")
    }

    #[test]
    fn producer_blocks_when_full_and_order_is_kept() {
        let (tx, rx) = bounded(10, usize::MAX);
        let producer = std::thread::spawn(move || {
            let mut recs = records(100);
            tx.send_all(&mut recs).unwrap();
            assert!(recs.is_empty());
        });
        let mut got = Vec::new();
        while got.len() < 100 {
            assert!(rx.observer().snapshot().records <= 10, "bound exceeded");
            let far = Instant::now() + Duration::from_millis(20);
            got.extend(
                rx.take_batch(7, usize::MAX, far)
                    .into_iter()
                    .map(|r| r.message),
            );
        }
        producer.join().unwrap();
        let want: Vec<String> = (0..100).map(|i| format!("r {i}")).collect();
        assert_eq!(got, want);
        assert_eq!(
            rx.wait_nonempty(Instant::now() + Duration::from_secs(5)),
            Err(Closed)
        );
    }

    /// A batch that stops growing is cut after `LINGER`, long before its deadline. The
    /// deadline is a minute away; a bound of 10 s is thousands of `LINGER`s and only tells
    /// an early cut from a wait for the deadline. (How full batches get while records keep
    /// coming is timing: it shows in the throughput of scripts/bench.sh, not in a test.)
    #[test]
    fn a_quiet_batch_is_cut_early() {
        let (tx, rx) = bounded(100_000, usize::MAX);
        tx.send_all(&mut records(3)).unwrap();
        let started = Instant::now();
        let batch = rx.take_batch(50, usize::MAX, Instant::now() + Duration::from_secs(60));
        assert_eq!(batch.len(), 3);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing more came: cut early, not at the deadline ({:?})",
            started.elapsed()
        );
        drop(tx);
    }

    /// After a quiet spell the batch is taken without waiting at all. Observed, not timed:
    /// the consumer sets `want` only while it waits for more records, and a watcher looks
    /// at it the whole time. A correct queue never sets it here, so the test cannot fail
    /// on a slow machine; a queue that lingers is seen with all but certainty.
    #[test]
    fn a_record_after_a_quiet_spell_goes_out_at_once() {
        let (tx, rx) = bounded(100, usize::MAX);
        tx.send_all(&mut records(1)).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(rx.take_batch(10, usize::MAX, far).len(), 1);
        // Quiet: the last batch was cut longer than QUIET ago.
        rx.0.inner.lock().last_cut = Some(Instant::now() - QUIET * 2);
        tx.send_all(&mut records(1)).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Arc::new(std::sync::Barrier::new(2));
        let (shared, finished, go) = (rx.0.clone(), done.clone(), started.clone());
        let watcher = std::thread::spawn(move || {
            let mut waited = false;
            go.wait();
            while !finished.load(std::sync::atomic::Ordering::SeqCst) {
                waited |= shared.inner.lock().want > 0;
                std::thread::yield_now();
            }
            waited
        });
        started.wait(); // the watcher is looking
        let batch = rx.take_batch(10, usize::MAX, far);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(batch.len(), 1);
        assert!(!watcher.join().unwrap(), "lingered after a quiet spell");
        drop(tx);
    }

    #[test]
    fn a_batch_is_not_cut_inside_a_group() {
        let (tx, rx) = bounded(100, usize::MAX);
        let mut recs = records(6);
        for r in &mut recs[1..4] {
            r.continues = true;
        }
        tx.send_all(&mut recs).unwrap();
        let far = Instant::now() + Duration::from_millis(20);
        let first = rx.take_batch(2, usize::MAX, far);
        assert_eq!(first.len(), 5, "records 1..=4 are one group");
        assert_eq!(rx.take_batch(2, usize::MAX, far).len(), 1);
    }

    fn big(n: usize, bytes: usize, first_nanos: i64) -> Vec<Record> {
        let mut recs = records(n);
        for (i, r) in recs.iter_mut().enumerate() {
            r.message = "x".repeat(bytes - r.approx_bytes() + r.message.len());
            r.time = Timestamp::from_nanos(first_nanos + i as i64);
        }
        recs
    }

    /// Producers wait when the bytes are reached though the record bound has room; the
    /// queue never holds more than its byte bound; every record arrives, in order.
    #[test]
    fn the_byte_bound_holds_and_nothing_is_lost() {
        let (tx, rx) = bounded(1_000, 10_000);
        let producer = std::thread::spawn(move || tx.send_all(&mut big(100, 1_000, 0)));
        let mut got = Vec::new();
        let far = Instant::now() + Duration::from_secs(60);
        while got.len() < 100 {
            let seen = rx.observer().snapshot();
            assert!(seen.bytes <= 10_000, "byte bound exceeded: {seen:?}");
            assert!(seen.records <= 10, "{seen:?}");
            got.extend(
                rx.take_batch(3, usize::MAX, far)
                    .into_iter()
                    .map(|r| r.time),
            );
            rx.settle();
        }
        assert_eq!(producer.join().unwrap(), Ok(()));
        let want: Vec<Timestamp> = (0..100).map(Timestamp::from_nanos).collect();
        assert_eq!(got, want);
        assert_eq!(rx.observer().snapshot(), Snapshot::default());
    }

    /// A record larger than the whole byte bound passes alone into an empty queue: never a
    /// deadlock, and never two such records queued together.
    #[test]
    fn a_record_larger_than_the_bound_passes_alone() {
        let (tx, rx) = bounded(1_000, 1_000);
        let producer = std::thread::spawn(move || tx.send_all(&mut big(3, 5_000, 0)));
        let far = Instant::now() + Duration::from_secs(60);
        let mut got = 0;
        while got < 3 {
            assert!(rx.observer().snapshot().records <= 1);
            if rx.wait_nonempty(far) == Ok(true) {
                let batch = rx.take_batch(10, usize::MAX, far);
                assert_eq!(batch.len(), 1, "one big record at a time");
                got += batch.len();
            }
        }
        assert_eq!(producer.join().unwrap(), Ok(()));
    }

    /// A big record is not overtaken for ever by producers of small ones: once it waits,
    /// they wait behind it, and it is in the queue within the batches it takes to make room
    /// for it (at most 40 here: the queue's 20 records, and the 10 of the producers ahead of
    /// it), not whenever the small producers happen to pause.
    #[test]
    fn a_waiting_big_record_is_served_before_later_small_ones() {
        let (tx, rx) = bounded(1_000, 10_000);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let small: Vec<_> = (0..2)
            .map(|p| {
                let (tx, stop) = (tx.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        if tx.send_all(&mut big(5, 500, 1_000 + n * 10 + p)).is_err() {
                            break;
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        let observer = rx.observer();
        let far = Instant::now() + Duration::from_secs(60);
        let deadline = Instant::now() + Duration::from_secs(60);
        while observer.snapshot().bytes < 9_000 {
            assert!(
                Instant::now() < deadline,
                "the small producers fill the queue"
            );
            std::thread::yield_now();
        }
        let waiter = tx.clone();
        let big_one = std::thread::spawn(move || waiter.send_all(&mut big(1, 6_000, 0)));
        while observer.snapshot().oldest != Some(Timestamp::from_nanos(0)) {
            assert!(Instant::now() < deadline, "the big record waits");
            std::thread::yield_now();
        }
        let mut batches = 0;
        loop {
            if rx.wait_nonempty(far) != Ok(true) {
                continue;
            }
            let batch = rx.take_batch(1, usize::MAX, far);
            rx.settle();
            batches += 1;
            if batch.iter().any(|r| r.time == Timestamp::from_nanos(0)) {
                break;
            }
            assert!(
                batches <= 40,
                "the big record was overtaken {batches} times"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(big_one.join().unwrap(), Ok(()));
        drop(tx);
        drop(rx);
        for t in small {
            t.join().unwrap();
        }
    }

    /// The oldest pending record is seen wherever it is: queued, in the batch in flight
    /// until settled, or held by a producer waiting for room.
    #[test]
    fn the_snapshot_sees_queued_in_flight_and_waiting_records() {
        let (tx, rx) = bounded(2, usize::MAX);
        let observer = rx.observer();
        assert_eq!(observer.snapshot().oldest, None);
        tx.send_all(&mut big(2, 500, 100)).unwrap();
        let seen = observer.snapshot();
        assert_eq!((seen.records, seen.bytes), (2, 1_000));
        assert_eq!(seen.oldest, Some(Timestamp::from_nanos(100)));
        // A producer with older records waits: the queue is full.
        let waiting = tx.clone();
        let producer = std::thread::spawn(move || waiting.send_all(&mut big(2, 500, 7)));
        let oldest_is = |nanos: i64| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while observer.snapshot().oldest != Some(Timestamp::from_nanos(nanos)) {
                assert!(Instant::now() < deadline, "{:?}", observer.snapshot());
                std::thread::yield_now();
            }
        };
        oldest_is(7);
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(rx.take_batch(2, usize::MAX, far).len(), 2);
        producer.join().unwrap().unwrap();
        // Times 7 and 8 are queued now; 100 and 101 are in flight.
        oldest_is(7);
        let second = rx.take_batch(2, usize::MAX, far);
        assert_eq!(second.len(), 2);
        oldest_is(7);
        rx.settle();
        assert_eq!(observer.snapshot(), Snapshot::default());
        drop(tx);
    }

    #[test]
    fn send_fails_when_the_consumer_is_gone() {
        let (tx, rx) = bounded(1, usize::MAX);
        drop(rx);
        assert_eq!(tx.send_all(&mut records(2)), Err(Closed));
    }
}
