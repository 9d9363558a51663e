//! What `/health` reports: Docker answers, the events stream is up, no sink has failed
//! continuously for 60 s (a local sink, the file sink: at its first failure), and the
//! positions file can be written. Each part is set by the thread that observes it; every
//! problem is listed in `reasons` with its cause. `warnings` lists what is unsafe but
//! not broken, or not yet: a sink with `tls.insecure_skip_verify`, a sink retrying for
//! less than 60 s with its last error, a refused configuration reload. Warnings do not degrade the status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

/// How long a sink may fail before the service reports itself degraded.
pub const SINK_FAILING_LIMIT: Duration = Duration::from_secs(60);

pub struct Health {
    docker_ok: AtomicBool,
    events_up: AtomicBool,
    /// Why the events stream is down (the last error), if it is.
    events_problem: parking_lot::Mutex<Option<String>>,
    /// The running configuration's (replaced at each reload).
    delivery: Mutex<Arc<DeliveryHealth>>,
    /// Set at start and at each reload; shown while the service runs, status unchanged.
    warnings: Mutex<Vec<String>>,
    /// Why the last SIGHUP reload was refused, until one succeeds.
    reload_problem: Mutex<Option<String>>,
    /// `containers.max_streams` reached, with containers waiting for a slot.
    cap_warning: Mutex<Option<String>>,
}

/// What the dispatcher reports: which sinks fail and why, and whether positions are saved.
#[derive(Default)]
pub struct DeliveryHealth {
    sinks: Mutex<Vec<SinkState>>,
    /// Why the positions file cannot be written, while it cannot.
    positions: Mutex<Option<String>>,
}

struct SinkState {
    name: String,
    /// Failing since, and the last error.
    failing: Option<(Instant, String)>,
    /// Reported from the first failure (a local sink: a full disk is no network blip).
    at_once: bool,
}

impl DeliveryHealth {
    /// The sink took a batch.
    pub fn sink_ok(&self, name: &str) {
        let mut sinks = self.sinks.lock();
        if let Some(s) = sinks.iter_mut().find(|s| s.name == name) {
            s.failing = None;
        }
    }

    /// The sink failed with `error`; `at_once` reports it before [`SINK_FAILING_LIMIT`].
    pub fn sink_failing(&self, name: &str, error: &str, at_once: bool) {
        let mut sinks = self.sinks.lock();
        let state = match sinks.iter().position(|s| s.name == name) {
            Some(i) => &mut sinks[i],
            None => {
                sinks.push(SinkState {
                    name: name.to_owned(),
                    failing: None,
                    at_once,
                });
                let last = sinks.len() - 1;
                &mut sinks[last]
            }
        };
        state.at_once = at_once;
        match &mut state.failing {
            Some((_, last)) => error.clone_into(last),
            None => state.failing = Some((Instant::now(), error.to_owned())),
        }
    }

    /// Forgets the sinks a reload removed (the kept ones keep their failing time).
    pub fn keep_sinks(&self, names: &[String]) {
        self.sinks.lock().retain(|s| names.contains(&s.name));
    }

    /// Sets (or clears, with `None`) why the positions file cannot be written.
    pub fn set_positions_problem(&self, problem: Option<String>) {
        *self.positions.lock() = problem;
    }

    /// Names of the sinks failing continuously for at least `for_at_least` (or failing at
    /// all, for those reported at once).
    pub fn failing(&self, for_at_least: Duration) -> Vec<String> {
        self.sink_reasons(for_at_least)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn sink_reasons(&self, for_at_least: Duration) -> Vec<(String, String)> {
        let now = Instant::now();
        self.sinks
            .lock()
            .iter()
            .filter_map(|s| {
                let (since, error) = s.failing.as_ref()?;
                let long = now.duration_since(*since) >= for_at_least;
                let reason = if long {
                    format!(
                        "sink {} has failed for more than {}s: {error}",
                        s.name,
                        for_at_least.as_secs()
                    )
                } else if s.at_once {
                    format!("sink {} is failing: {error}", s.name)
                } else {
                    return None;
                };
                Some((s.name.clone(), reason))
            })
            .collect()
    }

    /// The sinks failing for less than [`SINK_FAILING_LIMIT`] (not yet a problem: most
    /// outages are short), each with its last error, as `/health` lists them under
    /// `warnings`: a TLS or credentials mistake shows at once.
    pub(crate) fn retrying(&self) -> Vec<String> {
        let now = Instant::now();
        let sinks = self.sinks.lock();
        let retrying = sinks.iter().filter_map(|s| {
            let (since, error) = s.failing.as_ref()?;
            let failing_for = now.duration_since(*since);
            (!s.at_once && failing_for < SINK_FAILING_LIMIT).then(|| {
                format!(
                    "sink {} is retrying (failing for {}s): {error}",
                    s.name,
                    failing_for.as_secs()
                )
            })
        });
        retrying.collect()
    }

    /// Every problem, as `/health` lists it.
    pub(crate) fn reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .sink_reasons(SINK_FAILING_LIMIT)
            .into_iter()
            .map(|(_, reason)| reason)
            .collect();
        if let Some(why) = self.positions.lock().as_deref() {
            reasons.push(format!(
                "positions cannot be saved: {why} (capture goes on; retried after every batch)"
            ));
        }
        reasons
    }
}

#[derive(Serialize)]
struct Report<'a> {
    status: &'a str,
    docker: bool,
    events: bool,
    active_streams: usize,
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

impl Health {
    pub fn new(delivery: Arc<DeliveryHealth>) -> Health {
        Health {
            docker_ok: AtomicBool::new(false),
            events_up: AtomicBool::new(false),
            events_problem: parking_lot::Mutex::new(None),
            delivery: Mutex::new(delivery),
            warnings: Mutex::new(Vec::new()),
            reload_problem: Mutex::new(None),
            cap_warning: Mutex::new(None),
        }
    }

    /// What the dispatcher reports (kept across reloads).
    pub fn delivery(&self) -> Arc<DeliveryHealth> {
        self.delivery.lock().clone()
    }

    /// What is unsafe but working in the running configuration, listed under
    /// `warnings` (status unchanged); replaced at each reload.
    pub fn set_warnings(&self, warnings: Vec<String>) {
        *self.warnings.lock() = warnings;
    }

    /// Sets (or clears) the warning that containers wait for a follow slot.
    pub fn set_cap_warning(&self, warning: Option<String>) {
        *self.cap_warning.lock() = warning;
    }

    /// Sets (or clears, with `None`) why the last reload was refused: listed under
    /// `warnings`, status unchanged (the running configuration is fine).
    pub fn set_reload_problem(&self, problem: Option<String>) {
        *self.reload_problem.lock() = problem;
    }

    pub fn set_docker(&self, ok: bool) {
        self.docker_ok.store(ok, Ordering::Relaxed);
    }

    pub fn set_events(&self, up: bool) {
        self.events_up.store(up, Ordering::Relaxed);
    }

    pub fn set_events_problem(&self, problem: Option<String>) {
        *self.events_problem.lock() = problem;
    }

    /// `(healthy, JSON body)`.
    pub fn report(&self, active_streams: usize) -> (bool, String) {
        let docker = self.docker_ok.load(Ordering::Relaxed);
        let events = self.events_up.load(Ordering::Relaxed);
        let mut reasons = Vec::new();
        if !docker {
            reasons.push("docker daemon does not answer".to_string());
        }
        if !events {
            match self.events_problem.lock().as_deref() {
                Some(why) => reasons.push(format!("docker events stream is down: {why}")),
                None => reasons.push("docker events stream is down".to_string()),
            }
        }
        let delivery = self.delivery.lock().clone();
        reasons.extend(delivery.reasons());
        let healthy = reasons.is_empty();
        let report = Report {
            status: if healthy { "ok" } else { "degraded" },
            docker,
            events,
            active_streams,
            reasons,
            warnings: self
                .reload_problem
                .lock()
                .iter()
                .map(|why| format!("configuration reload refused (the running one is kept): {why}"))
                .chain(self.cap_warning.lock().iter().cloned())
                .chain(self.warnings.lock().iter().cloned())
                .chain(delivery.retrying())
                .collect(),
        };
        let body = serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_string());
        (healthy, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_counts_as_failing_after_the_limit_or_at_once() {
        let h = DeliveryHealth::default();
        h.sink_failing("loki-1", "connection refused", false);
        assert_eq!(
            h.retrying(),
            vec!["sink loki-1 is retrying (failing for 0s): connection refused".to_string()]
        );
        assert!(h.reasons().is_empty(), "not a problem yet");
        h.sink_ok("file-0");
        assert_eq!(h.failing(Duration::ZERO), vec!["loki-1".to_string()]);
        assert!(
            h.failing(Duration::from_secs(60)).is_empty(),
            "not for 60 s yet"
        );
        h.sink_failing("loki-1", "timed out", false);
        let reasons = h.sink_reasons(Duration::ZERO);
        assert_eq!(reasons.len(), 1, "a second failure keeps the first time");
        assert!(reasons[0].1.ends_with(": timed out"), "{reasons:?}");
        h.sink_ok("loki-1");
        assert!(h.failing(Duration::ZERO).is_empty());

        h.sink_failing("file-0", "No space left on device (os error 28)", true);
        assert_eq!(
            h.failing(Duration::from_secs(60)),
            vec!["file-0".to_string()]
        );
        assert_eq!(
            h.reasons(),
            vec!["sink file-0 is failing: No space left on device (os error 28)".to_string()]
        );
    }

    #[test]
    fn positions_that_cannot_be_saved_degrade_until_saved() {
        let delivery = Arc::new(DeliveryHealth::default());
        let health = Health::new(delivery.clone());
        health.set_docker(true);
        health.set_events(true);
        assert!(health.report(0).0);
        delivery.set_positions_problem(Some("Read-only file system (os error 30)".into()));
        let (healthy, body) = health.report(0);
        assert!(!healthy);
        assert!(
            body.contains("positions cannot be saved: Read-only file system"),
            "{body}"
        );
        delivery.set_positions_problem(None);
        assert!(health.report(0).0);
    }
}
