//! The queue's bounds, order, batching and gauges, with producer and consumer threads.

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
    // Five producers: each may hold a quarter of the bytes (three records of 700 here).
    let small: Vec<_> = (0..5)
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
        // Before it: the queue (20 records) and what the producers that waited before it
        // still hold of their current call (at most 5 each). Unfair would be without end.
        assert!(
            batches <= 20 + 5 * 5 + 1,
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
/// until settled, or held by a producer waiting for room (here: over its share).
#[test]
fn the_snapshot_sees_queued_in_flight_and_waiting_records() {
    let (tx, rx) = bounded(8, usize::MAX);
    let observer = rx.observer();
    assert_eq!(observer.snapshot().oldest, None);
    tx.send_all(&mut big(2, 500, 100)).unwrap();
    let seen = observer.snapshot();
    assert_eq!((seen.records, seen.bytes), (2, 1_000));
    assert_eq!(seen.oldest, Some(Timestamp::from_nanos(100)));
    // Another producer queues its share (two of a queue of eight), times 50 and 51, and
    // waits holding 5 and 6.
    let waiting = tx.clone();
    let mut held = big(2, 500, 50);
    held.extend(big(2, 500, 5));
    let producer = std::thread::spawn(move || waiting.send_all(&mut held));
    let oldest_is = |nanos: i64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while observer.snapshot().oldest != Some(Timestamp::from_nanos(nanos)) {
            assert!(Instant::now() < deadline, "{:?}", observer.snapshot());
            std::thread::yield_now();
        }
    };
    oldest_is(5);
    assert_eq!(observer.snapshot().records, 4);
    let far = Instant::now() + Duration::from_secs(60);
    assert_eq!(rx.take_batch(8, usize::MAX, far).len(), 4);
    producer.join().unwrap().unwrap();
    // Times 5 and 6 are queued now; 100, 101, 50 and 51 are in flight.
    oldest_is(5);
    let second = rx.take_batch(8, usize::MAX, far);
    assert_eq!(second.len(), 2);
    oldest_is(5);
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

/// A producer holds at most a quarter of the queue: a noisy one blocked on its share
/// leaves room, and a quiet producer's record is queued at once, behind that quarter only.
#[test]
fn a_noisy_producer_holds_at_most_a_quarter_and_a_quiet_one_gets_in() {
    let (noisy, rx) = bounded(100, usize::MAX);
    let quiet = noisy.clone();
    let flood = std::thread::spawn(move || noisy.send_all(&mut records(1_000)));
    queued_at_least(&rx, 25, "the noisy producer never queued its share");
    // Nothing was taken yet: the quiet record still gets in, beside the noisy share.
    let mut one = sample_records(1, "quiet");
    quiet.send_all(&mut one).unwrap();
    let seen = rx.observer().snapshot().records;
    assert_eq!(seen, 26, "25 noisy (its share) and the quiet one");
    let first = rx.take_batch(100, usize::MAX, Instant::now());
    assert_eq!(first.len(), 26);
    assert_eq!(first[25].message, "quiet 0");
    let mut got: Vec<String> = first[..25].iter().map(|r| r.message.clone()).collect();
    drop(quiet);
    while got.len() < 1_000 {
        let far = Instant::now() + Duration::from_millis(20);
        got.extend(
            rx.take_batch(100, usize::MAX, far)
                .into_iter()
                .map(|r| r.message),
        );
    }
    flood.join().unwrap().unwrap();
    let want: Vec<String> = (0..1_000).map(|i| format!("r {i}")).collect();
    assert_eq!(got, want, "the noisy producer's order is kept");
}

/// The share counts bytes too: a producer holds at most a quarter of `max_bytes`.
#[test]
fn the_share_counts_bytes() {
    let unit = big(1, 1_000, 0)[0].approx_bytes();
    let (noisy, rx) = bounded(1_000, unit * 8);
    let quiet = noisy.clone();
    let flood = std::thread::spawn(move || noisy.send_all(&mut big(50, 1_000, 0)));
    queued_at_least(&rx, 2, "never queued");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(rx.observer().snapshot().records, 2, "a quarter of 8 units");
    quiet.send_all(&mut big(1, 1_000, 99)).unwrap();
    assert_eq!(rx.observer().snapshot().records, 3);
    drop(quiet);
    take_all(&rx, 51);
    flood.join().unwrap().unwrap();
}

/// Producers come and go (one per followed stream): their slots are reused.
#[test]
fn slots_of_dropped_producers_are_reused() {
    let (tx, rx) = bounded(10, usize::MAX);
    for _ in 0..1_000 {
        let p = tx.clone();
        p.send_all(&mut records(1)).unwrap();
        drop(p);
        assert_eq!(rx.take_batch(10, usize::MAX, Instant::now()).len(), 1);
    }
    assert!(rx.0.inner.lock().shares.len() <= 3);
}

/// A producer whose next record does not fit its byte share (though the share is not
/// quite used) does not hold up a producer behind it.
#[test]
fn a_producer_whose_next_record_does_not_fit_its_share_lets_others_in() {
    let (noisy, rx) = bounded(1_000, 8_000);
    let quiet = noisy.clone();
    let flood = std::thread::spawn(move || noisy.send_all(&mut big(50, 700, 0)));
    queued_at_least(&rx, 2, "never queued");
    // 1,400 of its 2,000 bytes are used: the next 700 do not fit. The quiet record must
    // get in with no batch taken (a hang here is the bug).
    assert!(
        sent_in_time(quiet, big(1, 700, 99)),
        "the quiet record waited behind the noisy producer's share"
    );
    assert_eq!(rx.observer().snapshot().records, 3);
    take_all(&rx, 51);
    flood.join().unwrap().unwrap();
}

/// A group (`continues`) is queued whole past the producer's share, so no other stream's
/// record lands inside it and the batch holding it is not cut in the middle.
#[test]
fn a_group_is_queued_whole_past_the_share() {
    let (tx, rx) = bounded(8, usize::MAX);
    let other = tx.clone();
    let mut group = records(4);
    for r in &mut group[..3] {
        r.continues = true;
    }
    assert!(sent_in_time(tx, group), "the group stopped at the share");
    assert_eq!(rx.observer().snapshot().records, 4, "a share is 2 records");
    other.send_all(&mut sample_records(1, "other")).unwrap();
    let batch = rx.take_batch(2, usize::MAX, Instant::now());
    let got: Vec<&str> = batch.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(got, ["r 0", "r 1", "r 2", "r 3"], "the whole group, alone");
}

/// Takes batches until `n` records came.
fn take_all(rx: &Consumer, n: usize) {
    let mut got = 0;
    while got < n {
        let far = Instant::now() + Duration::from_millis(20);
        got += rx.take_batch(10, usize::MAX, far).len();
    }
}

/// Sends `records` from another thread, with nothing taken meanwhile: whether every one
/// was queued within 30 s (a hang catcher: blocked means it never returns).
fn sent_in_time(tx: Producer, mut records: Vec<Record>) -> bool {
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let sender = std::thread::spawn(move || {
        let sent = tx.send_all(&mut records);
        let _ = done_tx.send(sent);
    });
    let sent = done_rx.recv_timeout(Duration::from_secs(30));
    if sent.is_ok() {
        sender.join().unwrap();
    }
    sent == Ok(Ok(()))
}

/// Waits (bounded: a hang catcher) until at least `n` records are queued.
fn queued_at_least(rx: &Consumer, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.observer().snapshot().records < n {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
