//! Prometheus metrics of the whole process: one `Metrics` value, built once, shared by
//! `Arc`, with a typed handle per metric the README lists (Endpoints and metrics). Label
//! values are fixed sets (endpoint, stream, sink name, end reason), so cardinality stays
//! bounded. The queue's gauges (`queue_records`, `queue_bytes`, `lag_seconds`) are computed
//! from the live queue at each scrape ([`Metrics::watch_queue`]), so they tell the truth
//! during an outage, when nothing else would update them.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::capture::timestamp::Timestamp;
use crate::sink::queue::{Observer, Snapshot};

/// The Docker API endpoints we call, as `endpoint` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Version,
    Containers,
    Inspect,
    Logs,
    Events,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Ping,
        Endpoint::Version,
        Endpoint::Containers,
        Endpoint::Inspect,
        Endpoint::Logs,
        Endpoint::Events,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Ping => "ping",
            Endpoint::Version => "version",
            Endpoint::Containers => "containers",
            Endpoint::Inspect => "inspect",
            Endpoint::Logs => "logs",
            Endpoint::Events => "events",
        }
    }
}

/// Every metric the capturer exports.
pub struct Metrics {
    registry: Registry,
    pub docker_requests: IntCounterVec,
    pub docker_errors: IntCounterVec,
    pub docker_connections_opened: IntCounter,
    pub docker_stream_connections_opened: IntCounter,
    pub docker_stream_requests: IntCounter,
    pub docker_idle_connections: IntGauge,
    pub docker_active_connections: IntGauge,
    pub active_streams: IntGauge,
    pub streams_waiting: IntGauge,
    pub files_followed: IntGauge,
    pub stream_starts: IntCounter,
    pub stream_ends: IntCounterVec,
    pub records: IntCounterVec,
    pub bytes: IntCounter,
    pub partial_lines_merged: IntCounter,
    pub lines_truncated: IntCounter,
    pub duplicates_skipped: IntCounter,
    pub daemon_error_frames: IntCounter,
    pub file_rotations: IntCounter,
    pub inotify_fallbacks: IntCounter,
    pub file_bad_lines: IntCounter,
    pub sink_records: IntCounterVec,
    pub sink_errors: IntCounterVec,
    pub sink_retries: IntCounterVec,
    pub sink_rejected_records: IntCounterVec,
    pub sink_truncated_records: IntCounterVec,
    pub sink_batch_seconds: prometheus::HistogramVec,
    pub positions_flushes: IntCounter,
    pub positions_errors: IntCounter,
    pub records_dropped: IntCounterVec,
    pub parse_errors: IntCounter,
    pub rule_errors: IntCounter,
    pub events_reconnects: IntCounter,
    pub batch_records: Histogram,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    /// The queue the gauges read; replaced at each reload.
    queue: Arc<parking_lot::Mutex<Option<Observer>>>,
}

fn name(n: &str) -> String {
    format!("log_capturer_{n}")
}

impl Metrics {
    /// Builds and registers every metric, plus the `process_*` collector.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |n: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name(n), help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let counter = |n: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name(n), help))?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |n: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name(n), help))?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let queue = Arc::new(parking_lot::Mutex::new(None));
        registry.register(Box::new(QueueGauges::new(queue.clone())?))?;
        let sink_batch_seconds = prometheus::HistogramVec::new(
            HistogramOpts::new(
                name("sink_batch_seconds"),
                "Time to deliver one batch to a sink, retries included.",
            )
            .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0]),
            &["sink"],
        )?;
        registry.register(Box::new(sink_batch_seconds.clone()))?;
        let batch_records = Histogram::with_opts(
            HistogramOpts::new(name("batch_records"), "Records per dispatched batch.")
                .buckets(vec![1.0, 10.0, 100.0, 1000.0, 10000.0]),
        )?;
        registry.register(Box::new(batch_records.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Metrics {
            docker_requests: counter_vec(
                "docker_http_requests_total",
                "Requests sent to the Docker API.",
                &["endpoint"],
            )?,
            docker_errors: counter_vec(
                "docker_http_errors_total",
                "Docker API requests that failed (transport error or unexpected status).",
                &["endpoint"],
            )?,
            docker_connections_opened: counter(
                "docker_http_connections_opened_total",
                "Connections opened to the Docker socket.",
            )?,
            docker_stream_connections_opened: counter(
                "docker_http_stream_connections_opened_total",
                "Connections opened for follow streams (logs with follow=1, events).",
            )?,
            docker_stream_requests: counter(
                "docker_http_stream_requests_total",
                "Follow-stream requests (logs with follow=1, events); the rest are request/response calls.",
            )?,
            docker_idle_connections: gauge(
                "docker_http_idle_connections",
                "Open Docker connections not carrying a request (kept alive for reuse).",
            )?,
            docker_active_connections: gauge(
                "docker_http_active_connections",
                "Docker connections carrying a request or a follow stream.",
            )?,
            active_streams: gauge("active_streams", "Follow streams currently running.")?,
            streams_waiting: gauge(
                "streams_waiting",
                "Containers waiting for a follow slot (containers.max_streams reached); followed, from where they were found, as slots free.",
            )?,
            files_followed: gauge(
                "files_followed",
                "Host files (files.paths) currently followed.",
            )?,
            stream_starts: counter("stream_starts_total", "Follow streams started.")?,
            stream_ends: counter_vec(
                "stream_ends_total",
                "Follow streams ended, by reason.",
                &["reason"],
            )?,
            records: counter_vec(
                "records_total",
                "Records produced from container logs.",
                &["stream"],
            )?,
            bytes: counter("bytes_total", "Message bytes produced from container logs.")?,
            partial_lines_merged: counter(
                "partial_lines_merged_total",
                "Lines rebuilt from several 16 KiB partial frames.",
            )?,
            lines_truncated: counter(
                "lines_truncated_total",
                "Lines cut at containers.max_line_bytes.",
            )?,
            duplicates_skipped: counter(
                "duplicates_skipped_total",
                "Frames skipped on resume because they were already delivered.",
            )?,
            daemon_error_frames: counter(
                "daemon_error_frames_total",
                "In-band error frames (stdcopy type 3) sent by the daemon.",
            )?,
            file_rotations: counter(
                "file_rotations_total",
                "Log files followed across a rotation (json-file logs and host files).",
            )?,
            inotify_fallbacks: counter(
                "inotify_fallbacks_total",
                "Readers of files (files-mode containers, host-file directories) that poll because inotify is unavailable or fs.inotify.max_user_watches was reached.",
            )?,
            file_bad_lines: counter(
                "file_bad_lines_total",
                "Lines of json-file logs that could not be read (not an entry, or over 1 MiB), skipped.",
            )?,
            sink_records: counter_vec(
                "sink_records_total",
                "Records acknowledged by a sink.",
                &["sink"],
            )?,
            sink_errors: counter_vec("sink_errors_total", "Failed sink writes.", &["sink"])?,
            sink_retries: counter_vec("sink_retries_total", "Sink write retries.", &["sink"])?,
            sink_rejected_records: counter_vec(
                "sink_rejected_records_total",
                "Records a sink refused for good (not retryable), dropped.",
                &["sink"],
            )?,
            sink_truncated_records: counter_vec(
                "sink_truncated_records_total",
                "Records whose message a sink cut to its format's size limit (syslog: RFC 3164's 1024 bytes, a UDP datagram).",
                &["sink"],
            )?,
            sink_batch_seconds,
            positions_flushes: counter(
                "positions_flushes_total",
                "Times the positions file was written.",
            )?,
            records_dropped: counter_vec(
                "records_dropped_total",
                "Records dropped on purpose, by reason (rule: a drop or keep rule); their positions advance.",
                &["reason"],
            )?,
            parse_errors: counter(
                "parse_errors_total",
                "Messages a rule's parse could not read (kept as they were, without fields).",
            )?,
            rule_errors: counter(
                "rule_errors_total",
                "Containers whose log-capturer.* labels were invalid (captured with their rule's settings).",
            )?,
            positions_errors: counter(
                "positions_errors_total",
                "Failed writes of the positions file (disk full, read-only, permission); retried.",
            )?,
            events_reconnects: counter(
                "events_reconnects_total",
                "Reconnections of the Docker events stream.",
            )?,
            batch_records,
            config_reloads: counter_vec(
                "config_reloads_total",
                "Configuration reloads on SIGHUP, by result (ok, error).",
                &["result"],
            )?,
            config_last_reload_successful: gauge(
                "config_last_reload_successful",
                "1 when the last reload (or the start) applied its configuration, 0 when it was refused.",
            )?,
            queue,
            registry,
        })
    }

    /// Exports every fixed label set at zero from the start, so dashboards and `rate()` see
    /// the series before the first event. `sinks` are the configured sinks' names.
    pub fn init_labels(&self, sinks: &[String], end_reasons: &[&str]) {
        for e in Endpoint::ALL {
            self.docker_requests.with_label_values(&[e.as_str()]);
            self.docker_errors.with_label_values(&[e.as_str()]);
        }
        for s in ["stdout", "stderr"] {
            self.records.with_label_values(&[s]);
        }
        self.records_dropped.with_label_values(&["rule"]);
        for r in end_reasons {
            self.stream_ends.with_label_values(&[r]);
        }
        for s in sinks {
            self.sink_records.with_label_values(&[s]);
            self.sink_errors.with_label_values(&[s]);
            self.sink_retries.with_label_values(&[s]);
            self.sink_rejected_records.with_label_values(&[s]);
            self.sink_truncated_records.with_label_values(&[s]);
        }
    }

    /// Counts one request to `endpoint`.
    pub fn request(&self, endpoint: Endpoint) {
        self.docker_requests
            .with_label_values(&[endpoint.as_str()])
            .inc();
    }

    /// Counts one failed request to `endpoint`.
    pub fn request_error(&self, endpoint: Endpoint) {
        self.docker_errors
            .with_label_values(&[endpoint.as_str()])
            .inc();
    }

    /// Exports the gauges of `queue`, read from it at every scrape (the queue of the
    /// running configuration: a reload builds a new one).
    pub fn watch_queue(&self, queue: Observer) {
        *self.queue.lock() = Some(queue);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            log::warn!("metrics: cannot encode: {e}");
        }
        out
    }
}

/// `queue_records`, `queue_bytes` and `lag_seconds`, set from a snapshot of the queue when
/// they are collected.
struct QueueGauges {
    queue: Arc<parking_lot::Mutex<Option<Observer>>>,
    /// Two scrapes at once must not mix their snapshots (set, then collect).
    collecting: parking_lot::Mutex<()>,
    records: IntGauge,
    bytes: IntGauge,
    lag: Gauge,
}

impl QueueGauges {
    fn new(
        queue: Arc<parking_lot::Mutex<Option<Observer>>>,
    ) -> Result<QueueGauges, prometheus::Error> {
        Ok(QueueGauges {
            queue,
            collecting: parking_lot::Mutex::new(()),
            records: IntGauge::with_opts(Opts::new(
                name("queue_records"),
                "Records waiting in the pipeline queue.",
            ))?,
            bytes: IntGauge::with_opts(Opts::new(
                name("queue_bytes"),
                "Bytes of the records waiting in the pipeline queue (bounded by pipeline.queue_bytes).",
            ))?,
            lag: Gauge::with_opts(Opts::new(
                name("lag_seconds"),
                "Now minus the time of the oldest line not yet acknowledged by every sink (queued, held by a follower waiting for room, or in a batch being delivered); 0 when there is none.",
            ))?,
        })
    }
}

impl Collector for QueueGauges {
    fn desc(&self) -> Vec<&Desc> {
        [&self.records.desc(), &self.bytes.desc(), &self.lag.desc()]
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one_at_a_time = self.collecting.lock();
        let now = self
            .queue
            .lock()
            .as_ref()
            .map(Observer::snapshot)
            .unwrap_or(Snapshot {
                records: 0,
                bytes: 0,
                oldest: None,
            });
        self.records
            .set(i64::try_from(now.records).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(now.bytes).unwrap_or(i64::MAX));
        let lag = now.oldest.map_or(0.0, |t| {
            Timestamp::now().as_nanos().saturating_sub(t.as_nanos()) as f64 / 1e9
        });
        self.lag.set(lag.max(0.0));
        [
            self.records.collect(),
            self.bytes.collect(),
            self.lag.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
