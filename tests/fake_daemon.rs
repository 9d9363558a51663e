//! A fake Docker daemon for the faults a real one will not produce on demand (hangs, torn
//! frames, resets, 500s, garbage): an HTTP/1.1 server on a Unix socket in a temp dir,
//! speaking enough of the Engine API for the capturer (`/_ping`, `/version`,
//! `/containers/json`, inspect, `/events`, `/containers/{id}/logs`). Each request is
//! answered by a script of [`Step`]s chosen per endpoint ([`FakeDaemon::on`]); the
//! default scripts behave like dockerd (streams are chunked and stay open). Every request
//! is recorded, so tests can check that only GET was sent and count reconnects. One thread
//! per connection; Drop stops and joins them all, and removes the socket.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log_capturer::capture::timestamp::Timestamp;
use serde_json::json;

/// Which API endpoint a request was for (the version prefix and query are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    Ping,
    Version,
    List,
    Inspect,
    Logs,
    Events,
    Other,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path with the query, as sent.
    pub path: String,
    pub api: Api,
    /// The container ID of inspect and logs requests.
    pub id: Option<String>,
    pub at: Instant,
}

impl Request {
    /// The raw (still percent-encoded) value of a query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, q) = self.path.split_once('?')?;
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// `follow=1` on a logs request.
    pub fn follow(&self) -> bool {
        self.query("follow") == Some("1")
    }
}

/// A container the fake daemon knows.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub tty: bool,
    pub running: bool,
    pub started_at: String,
    /// Listed by `/containers/json` (an unlisted one is still inspectable and has logs).
    pub listed: bool,
    /// The logs body the default script sends (stdcopy frames, or raw text for TTY).
    pub logs: Vec<u8>,
}

impl FakeContainer {
    /// A running, listed, non-TTY container started now, with no logs.
    pub fn running(name: &str) -> FakeContainer {
        FakeContainer {
            id: fake_id(name),
            name: name.to_string(),
            image: "fake:1".to_string(),
            tty: false,
            running: true,
            started_at: Timestamp::now().to_rfc3339(),
            listed: true,
            logs: Vec::new(),
        }
    }

    pub fn with_logs(mut self, logs: Vec<u8>) -> FakeContainer {
        self.logs = logs;
        self
    }

    pub fn unlisted(mut self) -> FakeContainer {
        self.listed = false;
        self
    }

    fn summary(&self) -> serde_json::Value {
        json!({
            "Id": self.id,
            "Names": [format!("/{}", self.name)],
            "Image": self.image,
            "Labels": {},
            "State": if self.running { "running" } else { "exited" },
            "Created": 0,
        })
    }

    fn inspect(&self) -> serde_json::Value {
        json!({
            "Id": self.id,
            "Name": format!("/{}", self.name),
            "Created": self.started_at,
            "State": {
                "Status": if self.running { "running" } else { "exited" },
                "Running": self.running,
                "StartedAt": self.started_at,
                "FinishedAt": "0001-01-01T00:00:00Z",
            },
            "Config": {"Tty": self.tty, "Image": self.image, "Hostname": "fake", "Labels": {}},
            "HostConfig": {"LogConfig": {"Type": "json-file"}},
        })
    }

    /// The `start` event dockerd would send for this container.
    pub fn start_event(&self) -> String {
        let now = Timestamp::now().as_nanos();
        json!({
            "status": "start", "id": self.id, "from": self.image,
            "Type": "container", "Action": "start",
            "Actor": {"ID": self.id, "Attributes": {"image": self.image, "name": self.name}},
            "scope": "local", "time": now / 1_000_000_000, "timeNano": now,
        })
        .to_string()
    }
}

/// A deterministic 64-hex container ID for a name.
pub fn fake_id(name: &str) -> String {
    (0..4u8)
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (name, i).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// One stdcopy frame: `[kind,0,0,0,len u32 BE]` then `payload`.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A stdout (1) or stderr (2) frame of one line as `docker logs -t` sends it.
pub fn log_line(kind: u8, time: Timestamp, text: &str) -> Vec<u8> {
    frame(kind, format!("{} {text}\n", time.to_rfc3339()).as_bytes())
}

/// `data` as one chunk of a chunked body, on the wire.
pub fn chunk_wire(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

/// What the fake does, in order, to answer one request.
#[derive(Clone, Debug)]
pub enum Step {
    /// A complete response with Content-Length (JSON unless the body is `OK`).
    Respond(u16, String),
    /// Status line and headers of a chunked response (`Content-Type` if given).
    Head(u16, Option<&'static str>),
    /// One chunk (an empty one is skipped: it would end the body).
    Chunk(Vec<u8>),
    /// Bytes as they are (no chunk framing).
    Raw(Vec<u8>),
    /// Raw bytes one at a time, `every` apart.
    Drip(Vec<u8>, Duration),
    /// `chunk` sent again and again, as chunks, until `total` bytes went out.
    Flood {
        chunk: Vec<u8>,
        total: usize,
    },
    Pause(Duration),
    /// The terminating zero-length chunk.
    End,
    /// Keeps the connection open without sending, until the client leaves or Drop.
    Hold,
    /// Forwards, one chunk each, every event emitted since the request was recorded, like
    /// `GET /events`.
    Events,
    /// Closes the socket at once (a reset mid-body when a chunked body is open).
    Close,
}

/// What a script sees of a request.
pub struct Call {
    pub req: Request,
    /// How many earlier requests went to the same endpoint.
    pub nth: usize,
    /// The container the request names, when the daemon knows it.
    pub container: Option<FakeContainer>,
    pub containers: Vec<FakeContainer>,
}

type Script = Arc<dyn Fn(&Call) -> Vec<Step> + Send + Sync>;

/// What dockerd would answer.
pub fn default_steps(call: &Call) -> Vec<Step> {
    let not_found = || {
        let id = call.req.id.clone().unwrap_or_default();
        let body = json!({ "message": format!("No such container: {id}") });
        vec![Step::Respond(404, body.to_string())]
    };
    match call.req.api {
        Api::Ping => vec![Step::Respond(200, "OK".into())],
        Api::Version => {
            let body = json!({"Version": "fake", "ApiVersion": "1.41", "MinAPIVersion": "1.12"});
            vec![Step::Respond(200, body.to_string())]
        }
        Api::List => {
            let all = call.req.query("all") == Some("1");
            let list: Vec<_> = call
                .containers
                .iter()
                .filter(|c| c.listed && (all || c.running))
                .map(FakeContainer::summary)
                .collect();
            vec![Step::Respond(
                200,
                serde_json::Value::from(list).to_string(),
            )]
        }
        Api::Inspect => match &call.container {
            Some(c) => vec![Step::Respond(200, c.inspect().to_string())],
            None => not_found(),
        },
        Api::Logs => match &call.container {
            Some(c) => {
                let mut steps = vec![Step::Head(200, None), Step::Chunk(c.logs.clone())];
                let follow = call.req.follow() && c.running;
                steps.push(if follow { Step::Hold } else { Step::End });
                steps
            }
            None => not_found(),
        },
        Api::Events => vec![Step::Head(200, Some("application/json")), Step::Events],
        Api::Other => {
            let body = json!({"message": "page not found"});
            vec![Step::Respond(404, body.to_string())]
        }
    }
}

#[derive(Default)]
struct State {
    containers: Vec<FakeContainer>,
    scripts: HashMap<Api, Script>,
    requests: Vec<Request>,
    events: Vec<String>,
    /// Clones of the open connections, shut down by Drop.
    conns: HashMap<u64, UnixStream>,
    next_conn: u64,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.state().stopping
    }
}

/// The fake daemon; see the module doc.
pub struct FakeDaemon {
    shared: Arc<Shared>,
    socket: PathBuf,
    acceptor: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl FakeDaemon {
    /// Listens on a fresh socket in a temp dir; no containers yet.
    pub fn start() -> FakeDaemon {
        let dir = tempfile::tempdir().expect("fake daemon: tempdir");
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).expect("fake daemon: bind");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let sh = shared.clone();
        let acceptor = thread::Builder::new()
            .name("fakedockerd-accept".into())
            .spawn(move || accept_loop(&listener, &sh))
            .expect("fake daemon: spawn");
        FakeDaemon {
            shared,
            socket,
            acceptor: Some(acceptor),
            _dir: dir,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:///.../docker.sock`, for `docker.host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A `[docker]` section pointing the capturer here, with short timeouts.
    pub fn docker_toml(&self) -> String {
        format!(
            "[docker]\nhost = \"{}\"\nread_timeout = \"200ms\"\nrequest_timeout = \"1s\"\n",
            self.host()
        )
    }

    pub fn add(&self, c: FakeContainer) {
        self.shared.state().containers.push(c);
    }

    /// Answers every request to `api` with the steps `script` returns.
    pub fn on(&self, api: Api, script: impl Fn(&Call) -> Vec<Step> + Send + Sync + 'static) {
        self.shared.state().scripts.insert(api, Arc::new(script));
    }

    /// Sends `line` (one JSON object, or garbage) to every events stream whose request
    /// was received (see [`FakeDaemon::count`]).
    pub fn emit(&self, line: &str) {
        self.shared.state().events.push(line.to_string());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    pub fn requests_to(&self, api: Api) -> Vec<Request> {
        let state = self.shared.state();
        state
            .requests
            .iter()
            .filter(|r| r.api == api)
            .cloned()
            .collect()
    }

    pub fn count(&self, api: Api) -> usize {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|r| r.api == api)
            .count()
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.state().conns.len()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state();
            state.stopping = true;
            for conn in state.conns.values() {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
        // Wakes the acceptor, which then joins every connection thread.
        let _ = UnixStream::connect(&self.socket);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = {
            let mut state = shared.state();
            state.next_conn += 1;
            let id = state.next_conn;
            if let Ok(clone) = stream.try_clone() {
                state.conns.insert(id, clone);
            }
            id
        };
        let sh = shared.clone();
        let worker = thread::Builder::new()
            .name("fakedockerd-conn".into())
            .spawn(move || {
                Conn::new(stream, &sh).serve();
                sh.state().conns.remove(&id);
            });
        match worker {
            Ok(w) => workers.push(w),
            Err(_) => {
                shared.state().conns.remove(&id);
            }
        }
        let (done, running): (Vec<_>, Vec<_>) = workers.into_iter().partition(|w| w.is_finished());
        done.into_iter().for_each(|w| drop(w.join()));
        workers = running;
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Reads and writes of one connection wake up often, so Drop is seen promptly.
const SLICE: Duration = Duration::from_millis(25);

struct Conn<'a> {
    stream: UnixStream,
    shared: &'a Shared,
    buf: Vec<u8>,
    /// Index of the first event a `Step::Events` of the current request forwards.
    events_from: usize,
}

impl<'a> Conn<'a> {
    fn new(stream: UnixStream, shared: &'a Shared) -> Conn<'a> {
        let _ = stream.set_read_timeout(Some(SLICE));
        let _ = stream.set_write_timeout(Some(SLICE));
        Conn {
            stream,
            shared,
            buf: Vec::new(),
            events_from: 0,
        }
    }

    /// Answers requests on this connection until the client leaves, a script closes it,
    /// or the daemon stops.
    fn serve(&mut self) {
        while let Some(req) = self.read_request() {
            let (script, call) = {
                let mut state = self.shared.state();
                let nth = state.requests.iter().filter(|r| r.api == req.api).count();
                state.requests.push(req.clone());
                // Events emitted once the request is recorded reach this stream.
                self.events_from = state.events.len();
                let container = req
                    .id
                    .as_ref()
                    .and_then(|id| state.containers.iter().find(|c| &c.id == id).cloned());
                let call = Call {
                    req,
                    nth,
                    container,
                    containers: state.containers.clone(),
                };
                (state.scripts.get(&call.req.api).cloned(), call)
            };
            let steps = match script {
                Some(s) => s(&call),
                None => default_steps(&call),
            };
            let head_only = call.req.method == "HEAD";
            for step in steps {
                if !self.run(step, head_only) {
                    return;
                }
            }
        }
    }

    /// Reads one request head (a GET has no body; a body is read and dropped).
    fn read_request(&mut self) -> Option<Request> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut body_len = 0usize;
                for line in head.lines().skip(1) {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.trim().eq_ignore_ascii_case("content-length") {
                            body_len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                while self.buf.len() < body_len {
                    self.fill()?;
                }
                self.buf.drain(..body_len);
                return Some(parse_request_line(head.lines().next().unwrap_or("")));
            }
            if self.buf.len() > 64 * 1024 {
                return None;
            }
            self.fill()?;
        }
    }

    /// Reads more bytes; `None` when the client left or the daemon stops.
    fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        loop {
            if self.shared.stopping() {
                return None;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Some(());
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => return None,
            }
        }
    }

    /// Writes everything; false when the client left or the daemon stops.
    fn send(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.shared.stopping() {
                return false;
            }
            match self.stream.write(data) {
                Ok(0) => return false,
                Ok(n) => data = &data[n..],
                Err(e) if is_timeout(&e) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Waits `d` (forever for `None`); false when the client left or the daemon stops.
    /// Bytes the client sends meanwhile are dropped.
    fn idle(&mut self, d: Option<Duration>) -> bool {
        let until = d.map(|d| Instant::now() + d);
        let mut sink = [0u8; 1024];
        loop {
            if self.shared.stopping() {
                return false;
            }
            let left = until.map(|u| u.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return true;
            }
            let _ = self
                .stream
                .set_read_timeout(Some(left.map_or(SLICE, |l| l.min(SLICE))));
            let r = self.stream.read(&mut sink);
            let _ = self.stream.set_read_timeout(Some(SLICE));
            match r {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => return false,
            }
        }
    }

    fn run(&mut self, step: Step, head_only: bool) -> bool {
        match step {
            Step::Respond(status, body) => {
                let ctype = if body == "OK" {
                    "text/plain; charset=utf-8"
                } else {
                    "application/json"
                };
                let mut out = format!(
                    "HTTP/1.1 {status} {}\r\nApi-Version: 1.41\r\nContent-Type: {ctype}\r\n\
                     Server: Docker/fake (linux)\r\nContent-Length: {}\r\n\r\n",
                    reason(status),
                    body.len()
                )
                .into_bytes();
                if !head_only {
                    out.extend_from_slice(body.as_bytes());
                }
                self.send(&out)
            }
            Step::Head(status, ctype) => {
                let ctype = ctype.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
                let head = format!(
                    "HTTP/1.1 {status} {}\r\nApi-Version: 1.41\r\n{ctype}\
                     Server: Docker/fake (linux)\r\nTransfer-Encoding: chunked\r\n\r\n",
                    reason(status)
                );
                self.send(head.as_bytes())
            }
            Step::Chunk(data) if data.is_empty() => true,
            Step::Chunk(data) => self.send(&chunk_wire(&data)),
            Step::Raw(data) => self.send(&data),
            Step::Drip(data, every) => data
                .iter()
                .all(|b| self.send(std::slice::from_ref(b)) && self.idle(Some(every))),
            Step::Flood { chunk, total } => {
                let wire = chunk_wire(&chunk);
                let mut sent = 0;
                while sent < total && !chunk.is_empty() {
                    if !self.send(&wire) {
                        return false;
                    }
                    sent += chunk.len();
                }
                true
            }
            Step::Pause(d) => self.idle(Some(d)),
            Step::End => self.send(b"0\r\n\r\n"),
            Step::Hold => self.idle(None),
            Step::Events => self.forward_events(),
            Step::Close => {
                let _ = self.stream.shutdown(Shutdown::Both);
                false
            }
        }
    }

    fn forward_events(&mut self) -> bool {
        let mut next = self.events_from;
        loop {
            let new: Vec<String> = self.shared.state().events[next..].to_vec();
            next += new.len();
            for line in new {
                if !self.send(&chunk_wire(format!("{line}\n").as_bytes())) {
                    return false;
                }
            }
            if !self.idle(Some(SLICE)) {
                return false;
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// `GET /v1.41/containers/<id>/logs?x=1 HTTP/1.1` -> a [`Request`].
fn parse_request_line(line: &str) -> Request {
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let bare = path.split('?').next().unwrap_or("");
    let mut segs: Vec<&str> = bare.trim_start_matches('/').split('/').collect();
    // A version prefix like /v1.41.
    let version = segs.first().and_then(|s| s.strip_prefix('v'));
    if version
        .is_some_and(|v| v.contains('.') && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    {
        segs.remove(0);
    }
    let (api, id) = match segs.as_slice() {
        ["_ping"] => (Api::Ping, None),
        ["version"] => (Api::Version, None),
        ["events"] => (Api::Events, None),
        ["containers", "json"] => (Api::List, None),
        ["containers", id, "json"] => (Api::Inspect, Some(id.to_string())),
        ["containers", id, "logs"] => (Api::Logs, Some(id.to_string())),
        _ => (Api::Other, None),
    };
    Request {
        method,
        path,
        api,
        id,
        at: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_capturer::capture::decode::{LogDecoder, Output};
    use log_capturer::docker::client::{ClientSettings, DockerClient, LogsQuery, ReadOutcome};
    use log_capturer::Metrics;

    fn client(fake: &FakeDaemon) -> DockerClient {
        let settings = ClientSettings {
            socket: fake.socket().to_path_buf(),
            max_idle_connections: 2,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_millis(200),
            api_version: None,
        };
        DockerClient::new(settings, Arc::new(Metrics::new().unwrap()))
    }

    /// Raw HTTP exchange: the request, then everything until what was read ends with
    /// `until`, the server closes, or nothing came for `HANG` (a hang; the caller's
    /// assertions then fail on what was read).
    fn raw(fake: &FakeDaemon, request: &str, until: &str) -> String {
        let mut s = UnixStream::connect(fake.socket()).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !out.ends_with(until.as_bytes()) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// How long a step that should be immediate may take before the test calls it a hang.
    const HANG: Duration = Duration::from_secs(10);

    #[test]
    fn the_real_client_speaks_to_it() {
        let fake = FakeDaemon::start();
        let t = Timestamp::now();
        let logs = [log_line(1, t, "one"), log_line(2, t, "two")].concat();
        let c = FakeContainer::running("fake-1").with_logs(logs);
        fake.add(c.clone());
        let client = client(&fake);
        client.ping().unwrap();
        assert_eq!(client.negotiate().unwrap(), "1.41");
        let list = client.list_containers(true).unwrap();
        assert_eq!((list.len(), list[0].name()), (1, "fake-1"));
        let info = client.inspect(&c.id).unwrap();
        assert!(info.state.running);
        assert!(!info.config.tty);
        assert!(client.inspect(&fake_id("nope")).unwrap_err().is_not_found());

        let query = LogsQuery {
            follow: true,
            wake_when_quiet: true,
            stdout: true,
            stderr: true,
            since: None,
            tail: None,
        };
        let mut body = client.logs(&c.id, &query).unwrap();
        let mut dec = LogDecoder::new(None, 1024, None);
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lines.len() < 2 && Instant::now() < deadline {
            match body.read(dec.buffer().spare()).unwrap() {
                ReadOutcome::Data(n) => dec.buffer().filled(n),
                ReadOutcome::TimedOut => continue,
                ReadOutcome::Eof => panic!("a follow stream of a running container ended"),
            }
            dec.drain(false, &mut |o| {
                if let Output::Line { line, .. } = o {
                    lines.push(String::from_utf8(line.text).unwrap());
                }
            })
            .unwrap();
        }
        assert_eq!(lines, ["one", "two"]);
        // The stream stays open: the next read times out instead of ending.
        assert_eq!(body.read(&mut [0; 16]).unwrap(), ReadOutcome::TimedOut);
        drop(body);

        let reqs = fake.requests();
        assert!(reqs.iter().all(|r| r.method == "GET"), "{reqs:?}");
        let apis: Vec<Api> = reqs.iter().map(|r| r.api).collect();
        assert_eq!(
            apis,
            [
                Api::Ping,
                Api::Version,
                Api::List,
                Api::Inspect,
                Api::Inspect,
                Api::Logs
            ]
        );
        let logs = &reqs[5];
        assert_eq!(logs.id.as_deref(), Some(c.id.as_str()));
        assert!(logs.follow());
        assert_eq!(logs.query("timestamps"), Some("1"));
    }

    #[test]
    fn events_are_streamed_and_keep_alive_works() {
        let fake = FakeDaemon::start();
        let client = client(&fake);
        let mut body = client.events(None).unwrap();
        // Emitted once the stream is open.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fake.count(Api::Events) == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        fake.emit("{\"Action\":\"start\"}");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\n") && Instant::now() < deadline {
            if let ReadOutcome::Data(n) = body.read(&mut buf).unwrap() {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, b"{\"Action\":\"start\"}\n");
        drop(body);

        // Two requests on one connection.
        let text = raw(
            &fake,
            "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nGET /v1.41/version HTTP/1.1\r\nHost: d\r\n\r\n",
            r#""Version":"fake"}"#,
        );
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        assert!(text.contains("\"ApiVersion\":\"1.41\""), "{text}");
    }

    #[test]
    fn scripted_faults_and_drop_joins_everything() {
        let fake = FakeDaemon::start();
        fake.add(FakeContainer::running("fake-1"));
        fake.on(Api::Logs, |call| match call.nth {
            0 => vec![Step::Respond(500, r#"{"message":"boom"}"#.into())],
            _ => vec![
                Step::Head(200, None),
                Step::Pause(Duration::from_millis(10)),
                Step::Raw(chunk_wire(b"xyz")),
                Step::Close,
            ],
        });
        let id = fake_id("fake-1");
        let get = format!("GET /v1.41/containers/{id}/logs?follow=1 HTTP/1.1\r\n\r\n");
        let first = raw(&fake, &get, r#"{"message":"boom"}"#);
        assert!(first.starts_with("HTTP/1.1 500"), "{first}");
        assert!(first.ends_with(r#"{"message":"boom"}"#), "{first}");
        let second = raw(&fake, &get, "\r\n3\r\nxyz\r\n");
        assert!(second.ends_with("\r\n\r\n3\r\nxyz\r\n"), "{second}");
        assert_eq!(fake.count(Api::Logs), 2);

        // A held connection does not keep Drop from returning.
        let _held = UnixStream::connect(fake.socket()).unwrap();
        let mut s = UnixStream::connect(fake.socket()).unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while fake.open_connections() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let socket = fake.socket().to_path_buf();
        let started = Instant::now();
        drop(fake);
        assert!(
            started.elapsed() < HANG,
            "Drop took {:?}",
            started.elapsed()
        );
        assert!(UnixStream::connect(&socket).is_err());
        // Our end sees the server's close.
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut rest = Vec::new();
        assert!(s.read_to_end(&mut rest).is_ok());
    }

    #[test]
    fn request_lines_are_classified() {
        let r = parse_request_line("GET /v1.41/containers/abc/logs?follow=1&since=5.1 HTTP/1.1");
        assert_eq!((r.api, r.id.as_deref()), (Api::Logs, Some("abc")));
        assert_eq!(r.query("since"), Some("5.1"));
        assert_eq!(parse_request_line("GET /_ping HTTP/1.1").api, Api::Ping);
        assert_eq!(
            parse_request_line("HEAD /v1.47/_ping HTTP/1.1").api,
            Api::Ping
        );
        assert_eq!(
            parse_request_line("GET /version HTTP/1.1").api,
            Api::Version
        );
        let list = parse_request_line("GET /v1.41/containers/json?all=1 HTTP/1.1");
        assert_eq!(list.api, Api::List);
        assert_eq!(
            parse_request_line("GET /v1.41/containers/abc/json HTTP/1.1").api,
            Api::Inspect
        );
        assert_eq!(
            parse_request_line("GET /v1.41/events?x HTTP/1.1").api,
            Api::Events
        );
        assert_eq!(
            parse_request_line("POST /v1.41/containers/create HTTP/1.1").api,
            Api::Other
        );
    }
}
