//! The supervisor: decides which containers are followed and owns every follower's
//! `JoinHandle`. It reacts to Docker events, reconciles with the container list after each
//! events (re)connect, remembers per container the last consumed position (so a restarted
//! container resumes exactly where its previous stream ended), and on shutdown stops and
//! joins every follower. Nothing is detached.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::sink::queue::Producer;
use parking_lot::RwLock;

use super::filter::{Candidate, Filter};
use super::follower::{Counters, Follower, FollowerOutcome, StartFrom};
use super::record::{ContainerId, ContainerMeta, Position};
use super::streams::{StreamRegistry, StreamStats};
use super::timestamp::Timestamp;
use crate::config::Initial;
use crate::docker::client::DockerClient;
use crate::docker::types::{ContainerInspect, Event};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::positions::AckedPositions;
use crate::shutdown::Shutdown;

/// Messages to the supervisor.
pub enum SupEvent {
    Docker(Event),
    EventsConnected,
    EventsDown,
    FollowerDone(ContainerId),
    /// Shutdown was requested: stop waiting.
    Wake,
}

/// Fixed settings of the supervisor, from `[containers]`.
pub struct SupervisorSettings {
    pub filter: Filter,
    pub initial: Initial,
    pub stdout: bool,
    pub stderr: bool,
    pub max_line_bytes: usize,
    pub max_streams: usize,
    pub host: Arc<str>,
    /// When this run started: containers started later are read from their beginning.
    pub run_started: Timestamp,
}

struct Running {
    handle: JoinHandle<FollowerOutcome>,
    stop: Arc<AtomicBool>,
    meta: Arc<RwLock<Arc<ContainerMeta>>>,
}

pub struct Supervisor {
    pub client: Arc<DockerClient>,
    pub settings: SupervisorSettings,
    pub tx: Producer,
    pub events: Receiver<SupEvent>,
    pub notify: Sender<SupEvent>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<StreamRegistry>,
    pub acked: Arc<AckedPositions>,
    pub health: Arc<Health>,
    pub shutdown: Shutdown,
    followers: HashMap<ContainerId, Running>,
    /// Last consumed position of containers whose follower ended.
    produced: HashMap<ContainerId, Position>,
    /// Containers that started again while their previous follower was still finishing.
    restart_wanted: HashSet<ContainerId>,
    warned_cap: bool,
}

impl Supervisor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<DockerClient>,
        settings: SupervisorSettings,
        tx: Producer,
        events: (Sender<SupEvent>, Receiver<SupEvent>),
        metrics: Arc<Metrics>,
        registry: Arc<StreamRegistry>,
        acked: Arc<AckedPositions>,
        health: Arc<Health>,
        shutdown: Shutdown,
    ) -> Supervisor {
        Supervisor {
            client,
            settings,
            tx,
            notify: events.0,
            events: events.1,
            metrics,
            registry,
            acked,
            health,
            shutdown,
            followers: HashMap::new(),
            produced: HashMap::new(),
            restart_wanted: HashSet::new(),
            warned_cap: false,
        }
    }

    /// Runs until shutdown, then stops and joins every follower.
    pub fn run(mut self) {
        let wake = self.notify.clone();
        self.shutdown.on_trigger(move || {
            let _ = wake.send(SupEvent::Wake);
        });
        let mut last_ping = std::time::Instant::now();
        while !self.shutdown.is_triggered() {
            match self.events.recv_timeout(Duration::from_millis(500)) {
                Ok(ev) => self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_ping.elapsed() >= Duration::from_secs(5) {
                last_ping = std::time::Instant::now();
                // Also lets the keep-alive pool close connections idle past idle_timeout.
                let ok = self.client.ping().is_ok();
                self.health.set_docker(ok);
            }
        }
        self.stop_all();
    }

    fn handle(&mut self, ev: SupEvent) {
        match ev {
            SupEvent::EventsConnected => {
                self.health.set_events(true);
                self.health.set_docker(true);
                self.reconcile();
            }
            SupEvent::EventsDown => self.health.set_events(false),
            SupEvent::FollowerDone(id) => {
                self.reap(&id);
                if self.restart_wanted.remove(&id) {
                    self.consider(&id);
                }
            }
            SupEvent::Docker(ev) => self.docker_event(ev),
            SupEvent::Wake => {}
        }
    }

    fn docker_event(&mut self, ev: Event) {
        let id = ContainerId::new(&ev.actor.id);
        match ev.action.as_str() {
            "start" => {
                if self.followers.contains_key(&id) {
                    self.restart_wanted.insert(id);
                } else {
                    self.consider(&id);
                }
            }
            "destroy" => {
                self.produced.remove(&id);
                self.restart_wanted.remove(&id);
                self.acked.forget(&id);
            }
            "rename" => {
                if let Some(name) = ev.actor.attributes.get("name") {
                    if let Some(r) = self.followers.get(&id) {
                        let renamed = r.meta.read().renamed(name.trim_start_matches('/').into());
                        *r.meta.write() = Arc::new(renamed);
                    }
                    if let Some(stats) = self.stats_of(&id) {
                        *stats.name.lock() = name.trim_start_matches('/').to_string();
                    }
                }
            }
            _ => {}
        }
    }

    fn stats_of(&self, id: &ContainerId) -> Option<Arc<StreamStats>> {
        self.registry.get(id)
    }

    /// Follows every running container we do not follow yet.
    fn reconcile(&mut self) {
        match self.client.list_containers(false) {
            Ok(list) => {
                for c in list {
                    let id = ContainerId::new(&c.id);
                    if !self.followers.contains_key(&id) {
                        self.consider(&id);
                    }
                }
            }
            Err(e) => log::warn!("supervisor: cannot list containers: {e}"),
        }
    }

    /// Inspects a container and starts a follower if the filters accept it.
    fn consider(&mut self, id: &ContainerId) {
        if self.shutdown.is_triggered() || self.followers.contains_key(id) {
            return;
        }
        let info = match self.client.inspect(id.as_str()) {
            Ok(info) => info,
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                log::warn!("supervisor: cannot inspect {}: {e}", id.short());
                return;
            }
        };
        let name = info.name.trim_start_matches('/').to_string();
        let empty = Default::default();
        let labels = info.config.labels.as_ref().unwrap_or(&empty);
        let candidate = Candidate {
            id: id.as_str(),
            name: &name,
            image: &info.config.image,
            labels,
        };
        if !self.settings.filter.accepts(&candidate) {
            log::debug!("supervisor: {name} filtered out");
            return;
        }
        let Some(start) = self.start_point(id, &info) else {
            return;
        };
        if self.followers.len() >= self.settings.max_streams {
            if !self.warned_cap {
                log::warn!(
                    "supervisor: containers.max_streams = {} reached; {name} is not followed",
                    self.settings.max_streams
                );
                self.warned_cap = true;
            }
            return;
        }
        let meta = ContainerMeta::new(
            id.clone(),
            name,
            info.config.image.clone(),
            self.settings.filter.record_labels(labels),
            self.settings.host.clone(),
        );
        self.spawn(meta, info.config.tty, start);
    }

    /// Where to read from; `None` when there is nothing to read (a stopped container we
    /// have no business with).
    fn start_point(&self, id: &ContainerId, info: &ContainerInspect) -> Option<StartFrom> {
        if let Some(p) = self
            .produced
            .get(id)
            .copied()
            .or_else(|| self.acked.get(id))
        {
            return Some(StartFrom::After(p));
        }
        let started = Timestamp::parse(info.state.started_at.as_bytes()).ok();
        let started_during_run = started.is_some_and(|t| t >= self.settings.run_started);
        if started_during_run {
            return Some(StartFrom::Beginning);
        }
        if !info.state.running {
            return None;
        }
        Some(match self.settings.initial {
            Initial::Now => StartFrom::Since(self.settings.run_started),
            Initial::Beginning => StartFrom::Beginning,
            Initial::Tail(n) => StartFrom::Tail(n),
        })
    }

    fn spawn(&mut self, meta: ContainerMeta, tty: bool, start: StartFrom) {
        let id = meta.id.clone();
        let stats = Arc::new(StreamStats::new(id.clone(), meta.name.clone()));
        let meta = Arc::new(RwLock::new(Arc::new(meta)));
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            client: self.client.clone(),
            meta: meta.clone(),
            tty,
            start,
            stdout: self.settings.stdout,
            stderr: self.settings.stderr,
            max_line_bytes: self.settings.max_line_bytes,
            tx: self.tx.clone(),
            metrics: self.metrics.clone(),
            stats: stats.clone(),
            shutdown: self.shutdown.clone(),
            stop: stop.clone(),
            counters: Counters::new(&self.metrics),
        };
        let notify = self.notify.clone();
        let done_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("follow-{}", id.short()))
            .spawn(move || {
                let outcome = follower.run();
                let _ = notify.send(SupEvent::FollowerDone(done_id));
                outcome
            });
        match spawned {
            Ok(handle) => {
                log::info!(
                    "following {} ({}) from {start:?}",
                    meta.read().name,
                    id.short()
                );
                self.registry.insert(stats);
                self.metrics.stream_starts.inc();
                self.metrics.active_streams.inc();
                self.followers.insert(id, Running { handle, stop, meta });
            }
            Err(e) => log::error!("supervisor: cannot spawn a follower thread: {e}"),
        }
    }

    /// Joins a finished follower and keeps its final position.
    fn reap(&mut self, id: &ContainerId) {
        let Some(running) = self.followers.remove(id) else {
            return;
        };
        self.registry.remove(id);
        self.metrics.active_streams.dec();
        match running.handle.join() {
            Ok(outcome) => {
                log::info!(
                    "stopped following {} ({}): {}",
                    running.meta.read().name,
                    id.short(),
                    outcome.reason.as_str()
                );
                self.metrics
                    .stream_ends
                    .with_label_values(&[outcome.reason.as_str()])
                    .inc();
                if let Some(p) = outcome.position {
                    self.produced.insert(id.clone(), p);
                }
            }
            Err(_) => {
                log::error!("follower of {} panicked", id.short());
                self.metrics.stream_ends.with_label_values(&["panic"]).inc();
            }
        }
    }

    fn stop_all(&mut self) {
        for r in self.followers.values() {
            r.stop.store(true, Ordering::Relaxed);
        }
        let ids: Vec<ContainerId> = self.followers.keys().cloned().collect();
        for id in ids {
            self.reap(&id);
        }
    }
}
