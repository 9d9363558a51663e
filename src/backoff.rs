//! Exponential backoff with jitter, shared by every retry loop (followers, events,
//! sinks): each delay doubles up to a cap, and is drawn between half and all of it so
//! that many threads failing together (a daemon restart, a sink outage) spread out.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The next delay (jittered), doubling the base for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        jitter(base)
    }

    /// The next delay, but at least `floor` (a server's Retry-After) as long as that is
    /// within the cap: a server asking for more (an hour, a day) is retried after the cap,
    /// as in any other outage, rather than holding the whole pipeline back that long.
    pub fn next_at_least(&mut self, floor: Option<Duration>) -> Duration {
        let d = self.next_delay();
        floor.map_or(d, |f| d.max(f.min(self.max)))
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// A duration between half and all of `d`, from a cheap per-call random source.
pub fn jitter(d: Duration) -> Duration {
    let r = random_unit();
    d.mul_f64(0.5 + 0.5 * r)
}

/// A number in [0, 1): the clock's nanoseconds mixed with a per-thread counter
/// (splitmix64); good enough to spread retries, not for anything else.
fn random_unit() -> f64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0) });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(0);
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15) ^ nanos;
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut bases = Vec::new();
        for _ in 0..10 {
            let base = b.current;
            let d = b.next_delay();
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} outside [{:?}, {base:?}]",
                base / 2
            );
            bases.push(base);
        }
        assert_eq!(bases[0], Duration::from_millis(250));
        assert_eq!(bases[1], Duration::from_millis(500));
        assert_eq!(*bases.last().unwrap(), Duration::from_secs(30));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(250));
    }

    #[test]
    fn retry_after_is_a_floor_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        assert!(b.next_at_least(Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert!(b.next_at_least(None) <= Duration::from_millis(500));
        // A Retry-After beyond the cap waits the cap.
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(b.next_at_least(hour), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spreads() {
        let ds: std::collections::BTreeSet<_> =
            (0..50).map(|_| jitter(Duration::from_secs(1))).collect();
        assert!(ds.len() > 10, "{} distinct delays", ds.len());
    }
}
