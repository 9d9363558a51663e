//! Where a container's reading starts: the supervisor's decisions, pure, so each rule of
//! the README's guarantees is a unit test. A container with a position resumes after it
//! (the one consumed earlier in this run first, else the acknowledged one). Without one:
//! a container that started since the capturer's first recorded run is read from that
//! run (also when it has exited since, so short-lived containers lose nothing); one
//! already running before it starts per `containers.initial`; one that stopped before it
//! has nothing for us.

use super::follower::StartFrom;
use super::record::Position;
use super::timestamp::Timestamp;
use crate::config::Initial;

/// The times and setting the decisions depend on.
#[derive(Clone, Copy, Debug)]
pub struct StartRules {
    pub initial: Initial,
    /// When this run started (`initial = "now"` starts here).
    pub run_started: Timestamp,
    /// When the capturer first ran with this positions file.
    pub first_run_at: Timestamp,
}

/// What inspecting a container without a position told.
#[derive(Clone, Copy, Debug)]
pub enum Inspected {
    /// 404: removed meanwhile.
    Gone,
    /// Any other error: its start time is unknown.
    Failed,
    Found {
        /// `State.StartedAt`, if it parses.
        started: Option<Timestamp>,
        running: bool,
    },
}

/// After the position consumed in this run, else the acknowledged one (`acked` is only
/// looked up when needed).
pub fn known(
    produced: Option<Position>,
    acked: impl FnOnce() -> Option<Position>,
) -> Option<StartFrom> {
    produced.or_else(acked).map(StartFrom::After)
}

/// A start event: the container started just now, so without a position it is read
/// from the first recorded run (never per `initial`: it was not running before).
pub fn on_start_event(known: Option<StartFrom>, rules: &StartRules) -> StartFrom {
    known.unwrap_or(StartFrom::Since(rules.first_run_at))
}

/// A listed container without a position; `None`: nothing to follow.
pub fn without_position(inspected: Inspected, rules: &StartRules) -> Option<StartFrom> {
    let (started, running) = match inspected {
        Inspected::Gone => return None,
        // Reading from the first recorded run may re-read old lines but cannot lose any.
        Inspected::Failed => return Some(StartFrom::Since(rules.first_run_at)),
        Inspected::Found { started, running } => (started, running),
    };
    if started.is_some_and(|t| t >= rules.first_run_at) {
        return Some(StartFrom::Since(rules.first_run_at));
    }
    if !running {
        return None;
    }
    Some(match rules.initial {
        Initial::Now => StartFrom::Since(rules.run_started),
        Initial::Beginning => StartFrom::Beginning,
        Initial::Tail(n) => StartFrom::Tail(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: i64 = 1_000;
    const NOW: i64 = 5_000;

    fn rules(initial: Initial) -> StartRules {
        StartRules {
            initial,
            run_started: Timestamp::from_nanos(NOW),
            first_run_at: Timestamp::from_nanos(FIRST),
        }
    }

    fn found(started: i64, running: bool) -> Inspected {
        Inspected::Found {
            started: Some(Timestamp::from_nanos(started)),
            running,
        }
    }

    fn at(t: i64) -> Position {
        Position {
            time: Timestamp::from_nanos(t),
            frames_at_time: 1,
            file: None,
            marks: [None; 2],
        }
    }

    #[test]
    fn a_position_consumed_in_this_run_wins_over_the_acknowledged_one() {
        assert_eq!(
            known(Some(at(9)), || Some(at(7))),
            Some(StartFrom::After(at(9)))
        );
        assert_eq!(known(None, || Some(at(7))), Some(StartFrom::After(at(7))));
        assert_eq!(known(None, || None), None);
        let mut looked = false;
        known(Some(at(9)), || {
            looked = true;
            None
        });
        assert!(!looked, "the acknowledged position is not needed then");
    }

    #[test]
    fn a_start_event_without_position_reads_from_the_first_run() {
        let r = rules(Initial::Now);
        assert_eq!(
            on_start_event(None, &r),
            StartFrom::Since(Timestamp::from_nanos(FIRST))
        );
        let resume = Some(StartFrom::After(at(3)));
        assert_eq!(on_start_event(resume, &r), StartFrom::After(at(3)));
    }

    #[test]
    fn started_since_the_first_run_is_read_from_it_running_or_not() {
        for initial in [Initial::Now, Initial::Beginning, Initial::Tail(3)] {
            for running in [true, false] {
                for started in [FIRST, FIRST + 1, NOW + 1] {
                    assert_eq!(
                        without_position(found(started, running), &rules(initial)),
                        Some(StartFrom::Since(Timestamp::from_nanos(FIRST))),
                        "{initial:?} running={running} started={started}"
                    );
                }
            }
        }
    }

    #[test]
    fn running_before_the_first_run_starts_per_initial() {
        let before = FIRST - 1;
        assert_eq!(
            without_position(found(before, true), &rules(Initial::Now)),
            Some(StartFrom::Since(Timestamp::from_nanos(NOW)))
        );
        assert_eq!(
            without_position(found(before, true), &rules(Initial::Beginning)),
            Some(StartFrom::Beginning)
        );
        assert_eq!(
            without_position(found(before, true), &rules(Initial::Tail(10))),
            Some(StartFrom::Tail(10))
        );
        let unknown_start = Inspected::Found {
            started: None,
            running: true,
        };
        assert_eq!(
            without_position(unknown_start, &rules(Initial::Beginning)),
            Some(StartFrom::Beginning),
            "an unparsable start time counts as before"
        );
    }

    #[test]
    fn stopped_before_the_first_run_or_gone_is_not_followed() {
        for initial in [Initial::Now, Initial::Beginning, Initial::Tail(1)] {
            assert_eq!(
                without_position(found(FIRST - 1, false), &rules(initial)),
                None
            );
            assert_eq!(without_position(Inspected::Gone, &rules(initial)), None);
        }
    }

    #[test]
    fn an_inspect_error_reads_from_the_first_run_losing_nothing() {
        assert_eq!(
            without_position(Inspected::Failed, &rules(Initial::Now)),
            Some(StartFrom::Since(Timestamp::from_nanos(FIRST)))
        );
    }
}
