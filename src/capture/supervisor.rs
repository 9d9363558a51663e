//! The supervisor: decides which containers are followed and owns every follower's
//! `JoinHandle`. It reacts to Docker events, reconciles with the full container list
//! (running or not) after each events (re)connect, and decides where each container's
//! reading starts: after its position (acknowledged, or consumed earlier in this run),
//! from the first recorded run for containers that started since, or per
//! `containers.initial` for containers already running before any recorded run. On
//! shutdown it stops and joins every follower. Nothing is detached.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::RwLock;

use super::filter::{Candidate, Filter};
use super::follower::{
    Container, Context, EndReason, FilesMode, Follower, FollowerOutcome, StartFrom, Streams,
};
use super::gate::Gate;
use super::record::{ContainerId, ContainerMeta};
use super::start::{self, Inspected, StartRules};
use super::streams::{StreamRegistry, StreamStats};
use super::timestamp::Timestamp;
use super::watch::Wake;
use crate::config::ContainersConfig;
use crate::docker::client::DockerClient;
use crate::docker::types::{ContainerSummary, Event};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::process::rules::ContainerFacts;
use crate::shutdown::Shutdown;
use crate::sink::queue::Producer;

/// How many followers may be opening a logs request at the same time.
const CONCURRENT_OPENS: usize = 8;
/// How often idle pooled Docker connections are looked at, at least and at most: a
/// quarter of `docker.idle_timeout` in between.
const PURGE_MIN: Duration = Duration::from_secs(1);
const PURGE_MAX: Duration = Duration::from_secs(10);

/// Messages to the supervisor.
pub enum SupEvent {
    Docker(Event),
    EventsConnected,
    /// The events stream failed; `docker_answers`: the daemon answered (with an error).
    EventsDown {
        docker_answers: bool,
    },
    FollowerDone(ContainerId),
    /// Shutdown was requested: stop waiting.
    Wake,
}

/// Fixed settings of the supervisor, from `[containers]` and the positions file.
pub struct SupervisorSettings {
    pub filter: Filter,
    /// `containers.initial` and the times where containers without a position start.
    pub rules: StartRules,
    pub streams: Streams,
    pub max_line_bytes: usize,
    pub max_streams: usize,
    pub host: Arc<str>,
    /// `read_from = "files" | "auto"`.
    pub files: Option<FilesMode>,
    /// `[[rules]]`: what is done to a container's lines, resolved when it is followed.
    pub shaping: Arc<crate::process::rules::Rules>,
}

impl SupervisorSettings {
    /// From `[containers]`; `files` from [`FilesMode::new`]; the times from the positions.
    pub fn new(
        c: &ContainersConfig,
        files: Option<FilesMode>,
        host: Arc<str>,
        run_started: Timestamp,
        first_run_at: Timestamp,
    ) -> SupervisorSettings {
        SupervisorSettings {
            filter: Filter::new(c, super::filter::own_container_id()),
            rules: StartRules {
                initial: c.initial,
                run_started,
                first_run_at,
            },
            streams: Streams {
                stdout: c.stdout,
                stderr: c.stderr,
            },
            max_line_bytes: c.max_line_bytes(),
            max_streams: c.max_streams,
            host,
            files,
            shaping: Arc::default(),
        }
    }

    /// With the `[[rules]]` that shape the containers' lines.
    pub fn with_rules(mut self, rules: Arc<crate::process::rules::Rules>) -> SupervisorSettings {
        self.shaping = rules;
        self
    }
}

/// A container as discovery sees it, before following.
struct Found {
    id: ContainerId,
    name: String,
    image: String,
    labels: BTreeMap<String, String>,
}

struct Running {
    handle: JoinHandle<FollowerOutcome>,
    stop: Arc<AtomicBool>,
    /// The container exited: a follower reading its log file ends at the file's end.
    exited: Arc<AtomicBool>,
    /// Raised with `stop` and `exited`: a file source sleeping on inotify wakes at once.
    wake: Arc<Wake>,
    meta: Arc<RwLock<Arc<ContainerMeta>>>,
}

pub struct Supervisor {
    client: Arc<DockerClient>,
    settings: SupervisorSettings,
    tx: Producer,
    events: Receiver<SupEvent>,
    notify: Sender<SupEvent>,
    metrics: Arc<Metrics>,
    registry: Arc<StreamRegistry>,
    positions: Arc<Positions>,
    health: Arc<Health>,
    shutdown: Shutdown,
    gate: Arc<Gate>,
    followers: HashMap<ContainerId, Running>,
    /// Last consumed position of containers whose follower ended in this run.
    produced: HashMap<ContainerId, super::record::Position>,
    /// Stopped containers read to their end in this run (until they start again).
    completed: HashSet<ContainerId>,
    /// Containers the filters reject, or stopped ones with nothing for us.
    ignored: HashSet<ContainerId>,
    /// Containers whose invalid `log-capturer.*` labels were reported (once each).
    label_errors: HashSet<ContainerId>,
    /// Start events that came while the previous follower was still finishing, and
    /// whether the container died again meanwhile.
    restart_wanted: HashMap<ContainerId, (Event, bool)>,
    pruned: bool,
    /// Containers beyond `containers.max_streams`, in arrival order, with where each will
    /// start and whether it still runs: followed as slots free (nothing of them is lost:
    /// their start is fixed when they are found).
    waiting: VecDeque<Waiting>,
}

struct Waiting {
    found: Found,
    start: StartFrom,
    running: bool,
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
        positions: Arc<Positions>,
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
            positions,
            health,
            shutdown,
            gate: Arc::new(Gate::new(CONCURRENT_OPENS)),
            followers: HashMap::new(),
            produced: HashMap::new(),
            completed: HashSet::new(),
            ignored: HashSet::new(),
            label_errors: HashSet::new(),
            restart_wanted: HashMap::new(),
            pruned: false,
            waiting: VecDeque::new(),
        }
    }

    /// Runs until shutdown, then stops and joins every follower.
    pub fn run(mut self) {
        let wake = self.notify.clone();
        self.shutdown.on_trigger(move || {
            let _ = wake.send(SupEvent::Wake);
        });
        // Idle pooled connections are closed at most a quarter of idle_timeout late; the
        // thread wakes for nothing else (events and shutdown come on `events`).
        let every = (self.client.settings().idle_timeout / 4).clamp(PURGE_MIN, PURGE_MAX);
        let mut next_purge = Instant::now() + every;
        while !self.shutdown.is_triggered() {
            match self.events.recv_deadline(next_purge) {
                Ok(ev) => self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // No periodic ping: the events stream being up shows that Docker answers, and a
            // ping would keep pooled connections in rotation past idle_timeout.
            if Instant::now() >= next_purge {
                next_purge = Instant::now() + every;
                self.client.purge_idle();
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
            SupEvent::EventsDown { docker_answers } => {
                self.health.set_events(false);
                self.health.set_docker(docker_answers);
            }
            SupEvent::FollowerDone(id) => {
                self.reap(&id);
                if let Some((ev, died)) = self.restart_wanted.remove(&id) {
                    self.started(&ev, !died);
                }
                self.admit_waiting();
            }
            SupEvent::Docker(ev) => self.docker_event(ev),
            SupEvent::Wake => {}
        }
    }

    fn docker_event(&mut self, ev: Event) {
        let id = ContainerId::new(&ev.actor.id);
        match ev.action.as_str() {
            "start" => {
                self.completed.remove(&id);
                if self.followers.contains_key(&id) {
                    self.restart_wanted.insert(id, (ev, false));
                } else {
                    self.started(&ev, true);
                }
            }
            "die" => {
                self.exited(&id);
                // Died again before the previous follower finished: the follower started
                // for that run must know it is over.
                if let Some((_, died)) = self.restart_wanted.get_mut(&id) {
                    *died = true;
                }
            }
            "destroy" => {
                self.exited(&id);
                self.produced.remove(&id);
                self.completed.remove(&id);
                self.ignored.remove(&id);
                self.restart_wanted.remove(&id);
                self.label_errors.remove(&id);
                self.positions.forget(&id);
                self.unqueue(&id);
            }
            "rename" => {
                if let Some(name) = ev.actor.attributes.get("name") {
                    self.renamed(&id, name.trim_start_matches('/'));
                }
            }
            _ => {}
        }
    }

    /// Tells the container's follower (if any) that no more lines will come.
    fn exited(&mut self, id: &ContainerId) {
        if let Some(r) = self.followers.get(id) {
            r.exited.store(true, Ordering::SeqCst);
            r.wake.notify();
        }
        if let Some(w) = self.waiting.iter_mut().find(|w| w.found.id == *id) {
            w.running = false;
        }
    }

    /// Follows waiting containers while there are free slots.
    fn admit_waiting(&mut self) {
        while self.followers.len() < self.settings.max_streams {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            self.spawn(w.found, w.start, w.running);
        }
        self.waiting_changed();
    }

    fn unqueue(&mut self, id: &ContainerId) {
        let before = self.waiting.len();
        self.waiting.retain(|w| w.found.id != *id);
        if self.waiting.len() != before {
            self.registry.remove(id);
            self.waiting_changed();
        }
    }

    /// The gauge and `/health` follow the queue of waiting containers.
    fn waiting_changed(&self) {
        let n = self.waiting.len();
        self.metrics.streams_waiting.set(n as i64);
        let warning = (n > 0).then(|| {
            format!(
                "containers.max_streams = {} reached: {n} containers wait for a free slot \
                 (their lines are read once they are followed)",
                self.settings.max_streams
            )
        });
        self.health.set_cap_warning(warning);
    }

    fn renamed(&mut self, id: &ContainerId, name: &str) {
        if let Some(r) = self.followers.get(id) {
            let renamed = r.meta.read().renamed(name.to_string());
            *r.meta.write() = Arc::new(renamed);
        }
        if let Some(stats) = self.registry.get(id) {
            *stats.name.lock() = name.to_string();
        }
    }

    /// A start event: follow at once, with the metadata the event carries (name, image,
    /// labels), so containers that live milliseconds are read before they are removed.
    fn started(&mut self, ev: &Event, running: bool) {
        let attrs = &ev.actor.attributes;
        let mut labels = attrs.clone();
        let name = labels.remove("name").unwrap_or_default();
        let image = labels.remove("image").unwrap_or_default();
        let found = Found {
            id: ContainerId::new(&ev.actor.id),
            name: name.trim_start_matches('/').to_string(),
            image,
            labels,
        };
        if !self.accepts(&found) {
            return;
        }
        let start = start::on_start_event(self.known_position(&found.id), &self.settings.rules);
        self.spawn(found, start, running);
    }

    /// Follows every container (running or not) that has something for us.
    fn reconcile(&mut self) {
        let list = match self.client.list_containers(true) {
            Ok(list) => list,
            Err(e) => {
                log::warn!("supervisor: cannot list containers: {e}");
                return;
            }
        };
        let listed: HashSet<ContainerId> = list.iter().map(|c| ContainerId::new(&c.id)).collect();
        if !self.pruned {
            self.pruned = true;
            let removed = self.positions.retain(&listed);
            if removed > 0 {
                log::info!("positions: forgot {removed} containers removed while we were down");
            }
        }
        // Containers removed while the events stream was down: their followers are over.
        let gone: Vec<ContainerId> = self
            .followers
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        for id in &gone {
            self.exited(id);
        }
        // Waiting containers removed meanwhile have nothing left to read.
        let removed: Vec<ContainerId> = self
            .waiting
            .iter()
            .map(|w| w.found.id.clone())
            .filter(|id| !listed.contains(id))
            .collect();
        for id in &removed {
            self.unqueue(id);
        }
        for c in &list {
            self.listed(c);
        }
    }

    fn listed(&mut self, c: &ContainerSummary) {
        let id = ContainerId::new(&c.id);
        // Paused or restarting containers are not over: their log goes on.
        let running = matches!(c.state.as_str(), "running" | "paused" | "restarting");
        if !running {
            // Its die event may have been missed while the events stream was down.
            self.exited(&id);
        }
        if self.followers.contains_key(&id)
            || (!running && (self.completed.contains(&id) || self.ignored.contains(&id)))
        {
            return;
        }
        let found = Found {
            id,
            name: c.name().to_string(),
            image: c.image.clone(),
            labels: c.labels.clone().unwrap_or_default(),
        };
        if !self.accepts(&found) {
            return;
        }
        let start = match self.known_position(&found.id) {
            Some(s) => Some(s),
            None => self.start_without_position(&found.id),
        };
        match start {
            Some(s) => self.spawn(found, s, running),
            None => {
                self.ignored.insert(found.id);
            }
        }
    }

    fn accepts(&mut self, f: &Found) -> bool {
        let candidate = Candidate {
            id: f.id.as_str(),
            name: &f.name,
            image: &f.image,
            labels: &f.labels,
        };
        let ok = self.settings.filter.accepts(&candidate);
        if !ok {
            log::debug!("supervisor: {} filtered out", f.name);
            self.ignored.insert(f.id.clone());
        }
        ok
    }

    /// Resume after the position consumed in this run, or the acknowledged one.
    fn known_position(&self, id: &ContainerId) -> Option<StartFrom> {
        start::known(self.produced.get(id).copied(), || self.positions.get(id))
    }

    /// A container we have no position for: see [`start::without_position`].
    fn start_without_position(&self, id: &ContainerId) -> Option<StartFrom> {
        let inspected = match self.client.inspect(id.as_str()) {
            Ok(info) => Inspected::Found {
                started: Timestamp::parse(info.state.started_at.as_bytes()).ok(),
                running: info.state.running,
            },
            Err(e) if e.is_not_found() => Inspected::Gone,
            Err(e) => {
                log::warn!(
                    "supervisor: cannot inspect {}: {e}; reading it from the first recorded run",
                    id.short()
                );
                Inspected::Failed
            }
        };
        start::without_position(inspected, &self.settings.rules)
    }

    fn spawn(&mut self, found: Found, start: StartFrom, running: bool) {
        if self.shutdown.is_triggered() {
            return;
        }
        if self.followers.len() >= self.settings.max_streams {
            if let Some(w) = self.waiting.iter_mut().find(|w| w.found.id == found.id) {
                // Found again (e.g. started again after a die): it runs as last seen;
                // its earlier start still covers every line.
                w.running = running;
                return;
            }
            log::warn!(
                "supervisor: containers.max_streams = {} reached; {} waits for a free slot",
                self.settings.max_streams,
                found.name
            );
            let stats = StreamStats::new(found.id.clone(), found.name.clone());
            stats.set_state("waiting");
            self.registry.insert(Arc::new(stats));
            self.waiting.push_back(Waiting {
                found,
                start,
                running,
            });
            self.waiting_changed();
            return;
        }
        if self.waiting.iter().any(|w| w.found.id == found.id) {
            // Found again while waiting, with a slot free: followed now, once.
            self.waiting.retain(|w| w.found.id != found.id);
            self.waiting_changed();
        }
        let id = found.id.clone();
        let resolved = self.settings.shaping.for_container(&ContainerFacts {
            name: &found.name,
            image: &found.image,
            labels: &found.labels,
        });
        if let Some(error) = resolved.label_error {
            // Once per container (a restart follows it again with the same labels).
            if self.label_errors.insert(id.clone()) {
                self.metrics.rule_errors.inc();
                log::warn!(
                    "container {} ({}): {error}; its labels are ignored, its rule applies",
                    found.name,
                    id.short()
                );
            }
        }
        let labels = self.settings.filter.record_labels(&found.labels);
        let meta = ContainerMeta::new(
            id.clone(),
            found.name,
            found.image,
            labels,
            self.settings.host.clone(),
        );
        let stats = Arc::new(StreamStats::new(id.clone(), meta.name.clone()));
        let meta = Arc::new(RwLock::new(Arc::new(meta)));
        let stop = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(AtomicBool::new(!running));
        let wake = Wake::new();
        let container = Container {
            meta: meta.clone(),
            start,
            stats: stats.clone(),
            stop: stop.clone(),
            exited: exited.clone(),
            wake: wake.clone(),
            shaping: resolved.shaping,
        };
        // Boxed: moved into the thread as a pointer, so no stack frame of the thread holds
        // a copy of it (every follower's stack pages stay resident once touched).
        let follower = Box::new(Follower {
            ctx: Context::new(
                container,
                self.settings.streams,
                self.settings.max_line_bytes,
                self.tx.clone(),
                self.metrics.clone(),
                self.shutdown.clone(),
            ),
            client: self.client.clone(),
            gate: self.gate.clone(),
            files: self.settings.files.clone(),
        });
        let notify = self.notify.clone();
        let done_id = id.clone();
        let name = format!("follow-{}", id.short());
        let spawned = crate::threads::spawn(name, crate::threads::FOLLOWER_STACK, move || {
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
                self.ignored.remove(&id);
                self.registry.insert(stats);
                self.metrics.stream_starts.inc();
                self.metrics.active_streams.inc();
                self.followers.insert(
                    id,
                    Running {
                        handle,
                        stop,
                        exited,
                        wake,
                        meta,
                    },
                );
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
                match outcome.reason {
                    EndReason::Eof => {
                        self.completed.insert(id.clone());
                    }
                    EndReason::Unsupported => {
                        self.ignored.insert(id.clone());
                    }
                    _ => {}
                }
            }
            Err(_) => {
                log::error!("follower of {} panicked", id.short());
                self.metrics.stream_ends.with_label_values(&["panic"]).inc();
            }
        }
    }

    fn stop_all(&mut self) {
        for w in std::mem::take(&mut self.waiting) {
            self.registry.remove(&w.found.id);
        }
        self.waiting_changed();
        for r in self.followers.values() {
            r.stop.store(true, Ordering::Relaxed);
            r.wake.notify();
        }
        let ids: Vec<ContainerId> = self.followers.keys().cloned().collect();
        for id in ids {
            self.reap(&id);
        }
    }
}
