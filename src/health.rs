//! What `/health` reports: Docker answers, the events stream is up, and no sink has
//! failed continuously for 60 s. Each part is set by the thread that observes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::sink::dispatcher::SinkHealth;

/// How long a sink may fail before the service reports itself degraded.
pub const SINK_FAILING_LIMIT: Duration = Duration::from_secs(60);

pub struct Health {
    docker_ok: AtomicBool,
    events_up: AtomicBool,
    /// Why the events stream is down (the last error), if it is.
    events_problem: parking_lot::Mutex<Option<String>>,
    sinks: Arc<SinkHealth>,
}

#[derive(Serialize)]
struct Report<'a> {
    status: &'a str,
    docker: bool,
    events: bool,
    active_streams: usize,
    reasons: Vec<String>,
}

impl Health {
    pub fn new(sinks: Arc<SinkHealth>) -> Health {
        Health {
            docker_ok: AtomicBool::new(false),
            events_up: AtomicBool::new(false),
            events_problem: parking_lot::Mutex::new(None),
            sinks,
        }
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
        for name in self.sinks.failing(SINK_FAILING_LIMIT) {
            reasons.push(format!("sink {name} has failed for more than 60s"));
        }
        let healthy = reasons.is_empty();
        let report = Report {
            status: if healthy { "ok" } else { "degraded" },
            docker,
            events,
            active_streams,
            reasons,
        };
        let body = serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_string());
        (healthy, body)
    }
}
