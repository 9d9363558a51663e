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
//!
//! Fairness: one producer (one followed stream) may hold at most a quarter of either
//! bound in the queue. A container writing as fast as it can therefore never fills the
//! queue: a quiet container's line finds room at once and waits behind at most that
//! quarter, not behind a full queue of the noisy one's backlog. A producer over its share
//! waits without holding up the producers behind it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::capture::record::Record;
use crate::capture::timestamp::Timestamp;

struct Inner {
    /// The queued records, each with the slot of the producer that queued it.
    items: VecDeque<(Record, usize)>,
    /// Sum of `approx_bytes` of `items`.
    bytes: usize,
    producers: usize,
    consumer_gone: bool,
    /// The consumer sleeps until `items.len() >= want` (0 = not sleeping).
    want: usize,
    /// When the last batch was taken: a batch soon after it lingers for more.
    last_cut: Option<Instant>,
    /// Producers waiting for room, first come first served. Only the first whose next
    /// record fits its share may queue, so a big record is not overtaken for ever by
    /// producers of small ones.
    waiting: VecDeque<Waiter>,
    /// What each producer has queued, by slot; slots of dropped producers are reused once
    /// their records are taken.
    shares: Vec<Share>,
    free_slots: Vec<usize>,
    next_ticket: u64,
    /// The oldest record of the consumer's batch, until the consumer settles it.
    in_flight: Option<Timestamp>,
}

/// A producer waiting for room.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    ticket: u64,
    /// The oldest record it holds (for the gauges).
    oldest: Timestamp,
    slot: usize,
    /// The size of the next record it would queue.
    next_bytes: usize,
}

/// One producer's records and bytes in the queue.
#[derive(Clone, Copy, Debug, Default)]
struct Share {
    records: usize,
    bytes: usize,
    /// The last record it queued continues a group (`Record::continues`): the rest of
    /// the group is let in past the share, so no other stream's record lands inside it
    /// and a batch is never cut there.
    in_group: bool,
    dropped: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    capacity: usize,
    max_bytes: usize,
    /// The most one producer may hold queued (a quarter of each bound).
    share_records: usize,
    share_bytes: usize,
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

    /// Whether the producer of `slot` may queue `r` within its share (a producer with
    /// nothing queued always may, so one record larger than the share still passes).
    fn within_share(&self, inner: &Inner, slot: usize, next_bytes: usize) -> bool {
        let s = inner.shares[slot];
        s.records == 0
            || s.in_group
            || (s.records < self.share_records
                && s.bytes.saturating_add(next_bytes) <= self.share_bytes)
    }

    /// A slot for a new producer.
    fn new_slot(inner: &mut Inner) -> usize {
        match inner.free_slots.pop() {
            Some(slot) => {
                inner.shares[slot] = Share::default();
                slot
            }
            None => {
                inner.shares.push(Share::default());
                inner.shares.len() - 1
            }
        }
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
            shares: vec![Share::default()],
            free_slots: Vec::new(),
        }),
        capacity: capacity.max(1),
        max_bytes: max_bytes.max(1),
        share_records: (capacity / 4).max(1),
        share_bytes: (max_bytes / 4).max(1),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let producer = Producer {
        shared: shared.clone(),
        slot: 0,
    };
    (producer, Consumer(shared))
}

/// The consumer has hung up; the records were not queued.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// Sending half; cloning adds a producer (with its own share of the queue). The queue is
/// disconnected when all are dropped.
pub struct Producer {
    shared: Arc<Shared>,
    slot: usize,
}

impl Clone for Producer {
    fn clone(&self) -> Producer {
        let mut inner = self.shared.inner.lock();
        inner.producers += 1;
        let slot = Shared::new_slot(&mut inner);
        Producer {
            shared: self.shared.clone(),
            slot,
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let mut inner = self.shared.inner.lock();
        inner.producers -= 1;
        let share = &mut inner.shares[self.slot];
        share.dropped = true;
        if share.records == 0 {
            inner.free_slots.push(self.slot);
        }
        if inner.producers == 0 {
            self.shared.not_empty.notify_all();
        }
    }
}

impl Producer {
    /// Moves every record of `records` into the queue, in order, blocking while it is full
    /// or this producer's share is used. Producers that had to wait are served in the
    /// order they came, skipping those over their share.
    pub fn send_all(&self, records: &mut Vec<Record>) -> Result<(), Closed> {
        let shared = &*self.shared;
        let slot = self.slot;
        let mut drain = records.drain(..);
        let mut inner = shared.inner.lock();
        let mut ticket: Option<u64> = None;
        loop {
            if inner.consumer_gone {
                if let Some(t) = ticket {
                    inner.waiting.retain(|w| w.ticket != t);
                }
                return Err(Closed);
            }
            let first = inner
                .waiting
                .iter()
                .find(|w| shared.within_share(&inner, w.slot, w.next_bytes))
                .map(|w| w.ticket);
            let my_turn = first == ticket;
            if my_turn {
                while let Some(next) = drain.as_slice().first() {
                    let size = next.approx_bytes();
                    if !shared.has_room(&inner, next) || !shared.within_share(&inner, slot, size) {
                        break;
                    }
                    let bytes = next.approx_bytes();
                    if let Some(r) = drain.next() {
                        inner.bytes += bytes;
                        let share = &mut inner.shares[slot];
                        share.records += 1;
                        share.bytes += bytes;
                        share.in_group = r.continues;
                        inner.items.push_back((r, slot));
                    }
                }
            }
            if inner.want > 0 && inner.items.len() >= inner.want {
                shared.not_empty.notify_one();
            }
            let held = drain.as_slice();
            let (Some(oldest), Some(next)) = (held.iter().map(|r| r.time).min(), held.first())
            else {
                if let Some(t) = ticket {
                    // Done: the next waiter's turn.
                    inner.waiting.retain(|w| w.ticket != t);
                    shared.not_full.notify_all();
                }
                return Ok(());
            };
            // Full (or others were first): let the consumer take a batch even if it wanted
            // more, and show the records held here to the gauges while waiting.
            let next_bytes = next.approx_bytes();
            match ticket {
                Some(t) => {
                    if let Some(w) = inner.waiting.iter_mut().find(|w| w.ticket == t) {
                        w.oldest = oldest;
                        w.next_bytes = next_bytes;
                    }
                }
                None => {
                    let t = inner.next_ticket;
                    inner.next_ticket += 1;
                    inner.waiting.push_back(Waiter {
                        ticket: t,
                        oldest,
                        slot,
                        next_bytes,
                    });
                    ticket = Some(t);
                }
            }
            shared.not_empty.notify_one();
            if my_turn {
                // Whoever waited behind this producer may go now that it waits.
                shared.not_full.notify_all();
            }
            shared.not_full.wait(&mut inner);
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
            .map(|(r, _)| r.time)
            .chain(inner.waiting.iter().map(|w| w.oldest))
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
                Some((r, slot)) => {
                    let size = r.approx_bytes();
                    bytes += size;
                    let share = &mut inner.shares[slot];
                    share.records -= 1;
                    share.bytes -= size;
                    if share.dropped && share.records == 0 {
                        inner.free_slots.push(slot);
                    }
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
#[path = "queue_tests.rs"]
mod tests;
