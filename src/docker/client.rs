//! The Docker API client: a ureq agent over the Unix socket whose keep-alive pool is the
//! bounded connection cache. Its surface can only issue GET: ping, version, list,
//! inspect, and the two streaming endpoints (logs, events). Every call is counted by
//! endpoint; the API version is negotiated from the unversioned `GET /version`.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use ureq::Agent;

use super::error::DockerError;
use super::transport::{self, ConnCounts, NoResolver, UnixConnector};
use super::types::{ContainerInspect, ContainerSummary, ErrorBody, VersionInfo};
use crate::config::{ConfigError, DockerConfig};
use crate::metrics::{Endpoint, Metrics};

/// The newest API version we speak; older daemons are met at their own version.
pub const MAX_API_VERSION: (u32, u32) = (1, 47);
/// Largest request/response body we accept (a container list of a very busy host).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Settings of the client, from `[docker]`.
/// How long a read of an idle follow stream waits when nothing needs a wake-up: a
/// safety net only (shutdown interrupts the read), so a thousand idle containers do not
/// wake a thousand threads every second.
pub const QUIET_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP input buffer of each connection: the most one read of a body returns.
pub const INPUT_BUFFER: usize = 8 * 1024;

#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub socket: std::path::PathBuf,
    pub max_idle_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub read_timeout: Duration,
    /// `None` = negotiate; `Some("1.41")` = fixed.
    pub api_version: Option<String>,
}

impl ClientSettings {
    /// From `[docker]`.
    pub fn new(d: &DockerConfig) -> Result<ClientSettings, ConfigError> {
        Ok(ClientSettings {
            socket: d.socket_path()?,
            max_idle_connections: d.max_idle_connections,
            idle_timeout: d.idle_timeout.get(),
            request_timeout: d.request_timeout.get(),
            read_timeout: d.read_timeout.get(),
            api_version: (d.api_version != "auto").then(|| d.api_version.clone()),
        })
    }
}

/// A Docker API client. Cheap to share behind `Arc`; every method may be called from
/// any thread.
pub struct DockerClient {
    agent: Agent,
    settings: ClientSettings,
    version: RwLock<Option<String>>,
    counts: Arc<ConnCounts>,
    metrics: Arc<Metrics>,
}

impl DockerClient {
    pub fn new(settings: ClientSettings, metrics: Arc<Metrics>) -> DockerClient {
        let counts = Arc::new(ConnCounts::default());
        let config = Agent::config_builder()
            .http_status_as_error(false)
            // The socket is local; proxy variables meant for the sinks must not apply.
            .proxy(None)
            .max_idle_connections(settings.max_idle_connections)
            .max_idle_connections_per_host(settings.max_idle_connections)
            .max_idle_age(settings.idle_timeout)
            .user_agent(concat!("log-capturer/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(settings.request_timeout))
            // Requests are a few hundred bytes; each follow stream holds one input buffer,
            // resident whether the stream is busy or idle, so these are most of an API
            // follower's memory: 8 KiB reads a backlog as fast as 32 KiB did (1M lines:
            // 4.0-4.4 s against 4.4-4.5 s) for 36 KiB less per followed container.
            .output_buffer_size(2 * 1024)
            .input_buffer_size(INPUT_BUFFER)
            .build();
        let connector =
            UnixConnector::new(settings.socket.clone(), counts.clone(), metrics.clone());
        let agent = Agent::with_parts(config, connector, NoResolver);
        let version = RwLock::new(settings.api_version.clone());
        DockerClient {
            agent,
            settings,
            version,
            counts,
            metrics,
        }
    }

    /// Interrupts every blocked call and stream at once and refuses new ones.
    pub fn shutdown(&self) {
        self.agent.clone().shutdown();
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Closes pooled connections idle for longer than `docker.idle_timeout`, without
    /// touching the others and without any I/O (dockerd never closes idle connections;
    /// ureq's pool only expires them when asked for a connection).
    pub fn purge_idle(&self) {
        let _ = self
            .agent
            .get(format!("http://{}/", transport::PURGE_HOST))
            .call();
    }

    /// `GET /_ping`.
    pub fn ping(&self) -> Result<(), DockerError> {
        self.get_bytes("/_ping", Endpoint::Ping).map(|_| ())
    }

    /// `GET /version` (unversioned) and fix the API version we use from now on.
    pub fn negotiate(&self) -> Result<String, DockerError> {
        let info: VersionInfo = self.get_json("/version", Endpoint::Version)?;
        let chosen = match &self.settings.api_version {
            Some(v) => v.clone(),
            None => choose_version(&info)?,
        };
        log::info!(
            "docker: engine {} (API {}, min {}), using API {chosen}",
            info.version,
            info.api_version,
            info.min_api_version
        );
        *self.version.write() = Some(chosen.clone());
        Ok(chosen)
    }

    fn prefix(&self) -> Result<String, DockerError> {
        if let Some(v) = self.version.read().as_ref() {
            return Ok(format!("/v{v}"));
        }
        self.negotiate().map(|v| format!("/v{v}"))
    }

    /// `GET /containers/json`, optionally with stopped containers.
    pub fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, DockerError> {
        let path = format!("{}/containers/json?all={}", self.prefix()?, u8::from(all));
        self.get_json(&path, Endpoint::Containers)
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, id: &str) -> Result<ContainerInspect, DockerError> {
        let path = format!("{}/containers/{}/json", self.prefix()?, encode(id));
        self.get_json(&path, Endpoint::Inspect)
    }

    /// `GET /containers/{id}/logs?...`: a stream of stdcopy frames (or raw TTY text).
    pub fn logs(&self, id: &str, query: &LogsQuery) -> Result<BodyStream, DockerError> {
        let path = format!(
            "{}/containers/{}/logs?{}",
            self.prefix()?,
            encode(id),
            query.to_query()
        );
        let per_read = if query.follow && !query.wake_when_quiet {
            self.settings.read_timeout.max(QUIET_READ_TIMEOUT)
        } else {
            self.settings.read_timeout
        };
        self.get_stream(&path, Endpoint::Logs, query.follow, per_read)
    }

    /// `GET /events` filtered to container lifecycle events, from `since` (unix seconds).
    pub fn events(&self, since: Option<i64>) -> Result<BodyStream, DockerError> {
        let filters = r#"{"type":["container"],"event":["start","die","destroy","rename"]}"#;
        let mut path = format!("{}/events?filters={}", self.prefix()?, encode(filters));
        if let Some(s) = since {
            path.push_str(&format!("&since={s}"));
        }
        self.get_stream(&path, Endpoint::Events, true, self.settings.read_timeout)
    }

    fn url(path: &str) -> String {
        format!("http://docker{path}")
    }

    fn active(&self) -> ActiveGuard {
        ActiveGuard::new(self.counts.clone(), self.metrics.clone())
    }

    fn get_bytes(&self, path: &str, endpoint: Endpoint) -> Result<Vec<u8>, DockerError> {
        self.metrics.request(endpoint);
        let _active = self.active();
        let result = self
            .agent
            .get(Self::url(path))
            .config()
            .timeout_global(Some(self.settings.request_timeout))
            .build()
            .call()
            .and_then(|resp| {
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .into_with_config()
                    .limit(MAX_BODY)
                    .read_to_vec()?;
                Ok((status, body))
            });
        match result {
            Ok((status, body)) if (200..300).contains(&status) => Ok(body),
            Ok((status, body)) => {
                self.metrics.request_error(endpoint);
                Err(status_error(endpoint, status, &body))
            }
            Err(source) => {
                self.metrics.request_error(endpoint);
                Err(DockerError::Transport { endpoint, source })
            }
        }
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        endpoint: Endpoint,
    ) -> Result<T, DockerError> {
        let body = self.get_bytes(path, endpoint)?;
        serde_json::from_slice(&body).map_err(|source| {
            self.metrics.request_error(endpoint);
            DockerError::Decode { endpoint, source }
        })
    }

    /// A streaming GET. `long_lived`: a follow stream (logs with follow, events), which
    /// holds its connection for the container's lifetime, unlike a request/response call.
    fn get_stream(
        &self,
        path: &str,
        endpoint: Endpoint,
        long_lived: bool,
        per_read: Duration,
    ) -> Result<BodyStream, DockerError> {
        self.metrics.request(endpoint);
        if long_lived {
            self.metrics.docker_stream_requests.inc();
        }
        let active = self.active();
        let result = transport::opening_stream(long_lived, || {
            self.agent
                .get(Self::url(path))
                .config()
                .timeout_per_read(Some(per_read))
                .timeout_recv_response(Some(self.settings.request_timeout))
                .build()
                .call()
        });
        let resp = match result {
            Ok(resp) => resp,
            Err(source) => {
                self.metrics.request_error(endpoint);
                return Err(DockerError::Transport { endpoint, source });
            }
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            self.metrics.request_error(endpoint);
            let mut body = Vec::new();
            let _ = resp
                .into_body()
                .into_reader()
                .take(64 * 1024)
                .read_to_end(&mut body);
            return Err(status_error(endpoint, status, &body));
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Ok(BodyStream {
            reader: resp.into_body().into_reader(),
            content_type,
            endpoint,
            metrics: self.metrics.clone(),
            _active: active,
        })
    }
}

fn status_error(endpoint: Endpoint, status: u16, body: &[u8]) -> DockerError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    DockerError::Status {
        endpoint,
        status,
        message,
    }
}

/// Picks `min(ours, daemon's)`, never below the daemon's minimum.
fn choose_version(info: &VersionInfo) -> Result<String, DockerError> {
    let theirs = parse_version(&info.api_version).ok_or_else(|| {
        DockerError::Version(format!("unparsable ApiVersion {:?}", info.api_version))
    })?;
    let mut chosen = theirs.min(MAX_API_VERSION);
    if let Some(min) = parse_version(&info.min_api_version) {
        chosen = chosen.max(min);
    }
    Ok(format!("{}.{}", chosen.0, chosen.1))
}

/// "1.41" -> (1, 41).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Bytes kept as they are in a path segment or query value: RFC 3986's unreserved ones.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query value (Docker IDs and names are safe; the
/// events filter JSON is not).
fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Query of `/containers/{id}/logs`.
#[derive(Clone, Debug)]
pub struct LogsQuery {
    pub follow: bool,
    /// The reader has work when the stream goes quiet (a multiline rule flushes an open
    /// record): a read waits at most `docker.read_timeout`. Otherwise a follow stream's
    /// read waits up to [`QUIET_READ_TIMEOUT`]: shutdown and reload interrupt it at once
    /// (`DockerClient::shutdown`), so an idle container costs no wake-up a second.
    pub wake_when_quiet: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// `sec.nanos` (inclusive in Docker), or `None` for the beginning.
    pub since: Option<String>,
    /// `"all"` or a number of lines.
    pub tail: Option<String>,
}

impl LogsQuery {
    fn to_query(&self) -> String {
        let mut q = format!(
            "follow={}&stdout={}&stderr={}&timestamps=1",
            u8::from(self.follow),
            u8::from(self.stdout),
            u8::from(self.stderr)
        );
        if let Some(since) = &self.since {
            q.push_str("&since=");
            q.push_str(since);
        }
        if let Some(tail) = &self.tail {
            q.push_str("&tail=");
            q.push_str(&encode(tail));
        }
        q
    }
}

/// Counts a connection as active for as long as a request or stream holds it.
struct ActiveGuard {
    counts: Arc<ConnCounts>,
    metrics: Arc<Metrics>,
}

impl ActiveGuard {
    fn new(counts: Arc<ConnCounts>, metrics: Arc<Metrics>) -> ActiveGuard {
        counts.active.fetch_add(1, Ordering::Relaxed);
        transport::publish(&counts, &metrics);
        ActiveGuard { counts, metrics }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.counts.active.fetch_sub(1, Ordering::Relaxed);
        transport::publish(&self.counts, &self.metrics);
    }
}

/// What one read of a stream gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    /// Nothing arrived within `docker.read_timeout`; the stream is still usable.
    TimedOut,
    /// The daemon ended the body cleanly.
    Eof,
}

/// A streaming response body. Owns its connection: dropping it mid-body closes the socket,
/// reading it to the end returns the connection to the pool.
pub struct BodyStream {
    reader: ureq::BodyReader<'static>,
    content_type: String,
    endpoint: Endpoint,
    metrics: Arc<Metrics>,
    _active: ActiveGuard,
}

impl BodyStream {
    /// The response's Content-Type (API 1.41 sends none for logs).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Result<ReadOutcome, DockerError> {
        match self.reader.read(buf) {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            Err(e) => {
                let e = ureq::Error::from(e);
                if transport::is_read_timeout(&e) {
                    return Ok(ReadOutcome::TimedOut);
                }
                self.metrics.request_error(self.endpoint);
                Err(DockerError::Transport {
                    endpoint: self.endpoint,
                    source: e,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_choice() {
        let info = |api: &str, min: &str| VersionInfo {
            version: String::new(),
            api_version: api.into(),
            min_api_version: min.into(),
        };
        assert_eq!(choose_version(&info("1.41", "1.12")).unwrap(), "1.41");
        assert_eq!(choose_version(&info("1.52", "1.44")).unwrap(), "1.47");
        assert_eq!(choose_version(&info("1.60", "1.50")).unwrap(), "1.50");
        assert!(choose_version(&info("x", "1.12")).is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("abc-1_2.3"), "abc-1_2.3");
        assert_eq!(encode(r#"{"a":["b"]}"#), "%7B%22a%22%3A%5B%22b%22%5D%7D");
    }
}
