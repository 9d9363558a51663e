//! Protocol-faithful fake Grafana Loki and Elasticsearch receivers, and a generic HTTP endpoint,
//! for the sink tests, built on `tiny_http` at 127.0.0.1:<ephemeral>. Loki takes `POST /loki/api/v1/push` (JSON, optionally
//! gzipped) and rejects, with 400 and nothing recorded, what real Loki rejects: bad JSON, empty
//! or invalid labels, timestamps that are not nanosecond strings, entries out of order within a
//! stream. Elasticsearch takes `POST /_bulk` NDJSON `create`/`index` pairs and answers per item,
//! failures chosen by `set_item_failures`. The generic endpoint takes `POST` on any path (query
//! kept) and keeps the body of each request it answers 200 (`accepted`). A `Mode` (applied to every request, any path) injects
//! faults: fixed statuses, 429 with Retry-After, requests held until the mode changes (then 503),
//! and a closed port that is rebound (same port) when the mode changes again. Four worker
//! threads ("fakerx-w-<port>") take requests off tiny_http's queue; tiny_http is started from a
//! thread named "fakerx-h-<port>", so its own threads inherit that name. Refuse and Drop shut
//! down every socket of this process bound to the port, found through /proc/self/fd (the server
//! side of kept-alive connections, which tiny_http cannot close, then the listener), so no
//! connection outlives the server. Drop joins the workers; tiny_http's threads are detached and
//! cannot be joined: they end about 5 s after their server (its pool idles out).

use std::collections::BTreeMap;
use std::io::Read;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};
use tiny_http::{Header, Response, Server};

/// What a receiver plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Loki,
    Elasticsearch,
    /// Any path, any body: the generic HTTP sink's endpoint.
    Http,
}

/// How the receiver answers every request (default `Ok`); see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Status(u16, String),
    RetryAfter(u64),
    Hang,
    Refuse,
}

/// One request as received (`path` includes the query); `body` is gunzipped when `gzipped`.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub gzipped: bool,
}

impl Request {
    /// The first header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut it = self.headers.iter();
        it.find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn credentials(&self, scheme: &str) -> Option<&str> {
        let (s, rest) = self.header("Authorization")?.trim().split_once(' ')?;
        s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
    }

    /// `Authorization: Basic` decoded into (user, password).
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let text =
            String::from_utf8(BASE64_STANDARD.decode(self.credentials("Basic")?).ok()?).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }

    /// The token of `Authorization: Bearer`.
    pub fn bearer(&self) -> Option<String> {
        self.credentials("Bearer").map(str::to_string)
    }
}

/// One log entry of an accepted Loki push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LokiEntry {
    pub labels: BTreeMap<String, String>,
    pub ts_nanos: i64,
    pub line: String,
}

/// One document Elasticsearch accepted (item status 201).
#[derive(Clone, Debug, PartialEq)]
pub struct EsDoc {
    pub index: String,
    pub doc: Value,
}

type ItemFailures = Arc<dyn Fn(&Value) -> Option<(u16, String)> + Send + Sync>;
type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// Worker threads of one receiver.
pub const WORKERS: usize = 4;

#[derive(Default)]
struct State {
    mode: Option<Mode>, // None: Mode::Ok
    generation: u64,
    stopping: bool,
    busy: usize,
    requests: Vec<Request>,
    loki: Vec<LokiEntry>,
    es: Vec<EsDoc>,
    accepted: Vec<Request>,
    item_failures: Option<ItemFailures>,
}

struct Shared {
    kind: Kind,
    port: u16,
    state: Mutex<State>,
    changed: Condvar,
    server: Mutex<Option<Arc<Server>>>,
    next_id: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Waits (at most 1 s) until the requests being handled are answered.
    fn quiesce(&self) {
        let (idle, busy) = (Duration::from_secs(1), |s: &mut State| s.busy > 0);
        drop(self.changed.wait_timeout_while(self.state(), idle, busy));
    }

    /// Shuts the server down; the caller holds the `server` lock. tiny_http's pool loses a
    /// wakeup (and a thread, forever) if it is dropped while one of its threads is going idle,
    /// so the connections end first, all of tiny_http's threads are let fall asleep, and only
    /// then the listener is shut down (which ends the accept thread, and so drops the pool).
    fn close(&self, slot: &mut Option<Arc<Server>>) {
        let Some(server) = slot.take() else { return };
        self.quiesce();
        let deadline = Instant::now() + Duration::from_secs(1);
        while close_port(self.port, false) > 0 && Instant::now() < deadline {
            while let Ok(Some(queued)) = server.try_recv() {
                drop(queued); // its socket closes with it
            }
            thread::sleep(Duration::from_millis(5));
        }
        while !asleep(self.port) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        close_port(self.port, true);
        close_port(self.port, false); // any accepted meanwhile
        drop(server);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake Loki, Elasticsearch or generic HTTP endpoint; see the module doc.
pub struct Receiver {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// A fake Loki serving `POST /loki/api/v1/push`; other paths 404.
    pub fn loki() -> Receiver {
        Receiver::start(Kind::Loki)
    }

    /// A fake Elasticsearch serving `POST /_bulk` and `GET /`.
    pub fn elasticsearch() -> Receiver {
        Receiver::start(Kind::Elasticsearch)
    }

    /// An endpoint taking `POST` on any path, answering 200 in `Mode::Ok`; other methods 405.
    pub fn http() -> Receiver {
        Receiver::start(Kind::Http)
    }

    fn start(kind: Kind) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake receiver: bind");
        let port = listener.local_addr().unwrap().port();
        let server = Mutex::new(Some(serve(listener, port)));
        let (state, changed, next_id) = (Mutex::default(), Condvar::new(), AtomicU64::new(1));
        let shared = Arc::new(Shared {
            kind,
            port,
            state,
            changed,
            server,
            next_id,
        });
        let spawn = |_| {
            let sh = shared.clone();
            let b = thread::Builder::new().name(format!("fakerx-w-{port}"));
            b.spawn(move || worker(&sh)).expect("spawn a worker")
        };
        let workers = (0..WORKERS).map(spawn).collect();
        Receiver { shared, workers }
    }

    /// "http://127.0.0.1:<port>"; the port stays the same across `Refuse`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.port)
    }

    /// Switches the mode: releases hung requests (503), closes or rebinds the port.
    pub fn set_mode(&self, mode: Mode) {
        let sh = &self.shared;
        let mut slot = lock(&sh.server);
        let refuse = mode == Mode::Refuse;
        let mut st = sh.state();
        (st.mode, st.generation) = (Some(mode), st.generation + 1);
        drop(st);
        sh.changed.notify_all();
        if refuse {
            sh.close(&mut slot);
        } else if slot.is_none() {
            *slot = Some(serve(bind_port(sh.port), sh.port));
        }
    }

    /// ES only: `Some((status, reason))` fails that document's bulk item, `None` accepts it.
    pub fn set_item_failures(
        &self,
        f: impl Fn(&Value) -> Option<(u16, String)> + Send + Sync + 'static,
    ) {
        self.shared.state().item_failures = Some(Arc::new(f));
    }

    /// Every request received, answered or not, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The entries of accepted pushes, in order received.
    pub fn loki_entries(&self) -> Vec<LokiEntry> {
        self.shared.state().loki.clone()
    }

    /// The documents accepted (item status 201), in order.
    pub fn es_docs(&self) -> Vec<EsDoc> {
        self.shared.state().es.clone()
    }

    /// Generic endpoint: the requests answered 200, in order (bodies gunzipped).
    pub fn accepted(&self) -> Vec<Request> {
        self.shared.state().accepted.clone()
    }

    /// Polls `f` every 20 ms; panics naming `what` after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            let n = self.shared.state().requests.len();
            let why = format!("timed out after {timeout:?} waiting for {what} ({n} requests)");
            assert!(Instant::now() < deadline, "{why}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let sh = &self.shared;
        let mut slot = lock(&sh.server);
        sh.state().stopping = true;
        sh.changed.notify_all();
        sh.close(&mut slot);
        drop(slot);
        self.workers.drain(..).for_each(|w| drop(w.join()));
    }
}

/// Starts tiny_http on `listener` from a thread named after the port: tiny_http's threads
/// (accept, pool, connections) inherit the name, so tests can find them in /proc.
fn serve(listener: TcpListener, port: u16) -> Arc<Server> {
    let b = thread::Builder::new().name(format!("fakerx-h-{port}"));
    let h = b.spawn(move || Server::from_listener(listener, None));
    let server = h.expect("spawn").join().unwrap();
    Arc::new(server.expect("fake receiver: start tiny_http"))
}

/// Rebinds the port after `Refuse`. std sets SO_REUSEADDR, so TIME_WAIT does not block it;
/// a socket that took the free port meanwhile does: retried for 2 s, then a panic.
fn bind_port(port: u16) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if Instant::now() >= deadline => {
                panic!("fake receiver: cannot rebind 127.0.0.1:{port} after Refuse: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Shuts down the sockets of this process whose local address is 127.0.0.1:`port`: the server
/// side of every connection, or the listener (then connections are refused at once and
/// tiny_http's accept thread ends). Returns how many it found.
fn close_port(port: u16, listener: bool) -> usize {
    let mut found = 0;
    let ours = |a: SocketAddr| a.port() == port && a.ip().is_loopback();
    let dir = std::fs::read_dir("/proc/self/fd");
    for entry in dir.into_iter().flatten().flatten() {
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        let fd = entry.file_name().to_string_lossy().parse();
        let (Ok(fd), true) = (fd, link.to_string_lossy().starts_with("socket:")) else {
            continue;
        };
        // SAFETY: the fd is only borrowed (ManuallyDrop never closes it); if it was closed and
        // reused meanwhile, `local_addr` fails or names another address and nothing is done.
        let sock = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
        if sock.local_addr().is_ok_and(ours) && sock.peer_addr().is_err() == listener {
            let _ = sock.shutdown(Shutdown::Both);
            found += 1;
        }
    }
    found
}

/// Whether every thread of tiny_http for `port` sleeps (is in state S).
fn asleep(port: u16) -> bool {
    let name = format!("fakerx-h-{port}");
    let read = |t: &std::fs::DirEntry, f| std::fs::read_to_string(t.path().join(f));
    let tasks = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten();
    let mut ours = tasks.filter(|t| read(t, "comm").is_ok_and(|c| c.trim() == name));
    let sleeping = |s: String| s.rsplit(") ").next().is_some_and(|st| st.starts_with('S'));
    ours.all(|t| read(&t, "stat").is_ok_and(sleeping))
}

fn worker(sh: &Shared) {
    while !sh.state().stopping {
        let server = lock(&sh.server).clone();
        match server.map(|s| s.recv_timeout(Duration::from_millis(20))) {
            Some(Ok(Some(rq))) => handle(sh, rq),
            _ => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn handle(sh: &Shared, mut rq: tiny_http::Request) {
    sh.state().busy += 1;
    let (status, headers, body) = answer(sh, &mut rq);
    let resp = Response::from_data(body).with_status_code(status);
    let mut resp = resp.with_chunked_threshold(usize::MAX);
    for (k, v) in headers {
        resp.add_header(Header::from_bytes(k, v).expect("a valid header"));
    }
    let _ = rq.respond(resp);
    sh.state().busy -= 1;
    sh.changed.notify_all();
}

fn answer(sh: &Shared, rq: &mut tiny_http::Request) -> Reply {
    let header = |h: &Header| (h.field.to_string(), h.value.to_string());
    let headers = rq.headers().iter().map(header).collect();
    let (method, path) = (rq.method().to_string(), rq.url().to_string());
    let mut req = Request {
        method,
        path,
        headers,
        body: vec![],
        gzipped: false,
    };
    let read = rq.as_reader().read_to_end(&mut req.body);
    let mut bad = read.err().map(|e| e.to_string());
    let encoding = req.header("Content-Encoding").map(str::trim);
    req.gzipped = encoding == Some("gzip");
    if req.gzipped && bad.is_none() {
        let mut out = vec![];
        match flate2::read::GzDecoder::new(&req.body[..]).read_to_end(&mut out) {
            Ok(_) => req.body = out,
            Err(e) => bad = Some(format!("gzip: {e}")),
        }
    }
    let mut st = sh.state();
    st.requests.push(req.clone());
    let (mode, generation) = (st.mode.clone().unwrap_or(Mode::Ok), st.generation);
    drop(st);
    if let Some(why) = bad {
        return text(400, &why);
    }
    match (mode, sh.kind) {
        (Mode::Ok, Kind::Elasticsearch) => bulk(sh, &req),
        (Mode::Ok, Kind::Loki) => match loki_push(&req) {
            Ok(entries) => {
                sh.state().loki.extend(entries);
                (204, vec![], vec![])
            }
            Err(reply) => reply,
        },
        (Mode::Ok, Kind::Http) if req.method != "POST" => text(405, "405 method not allowed"),
        (Mode::Ok, Kind::Http) => {
            sh.state().accepted.push(req);
            (200, vec![("Content-Type", JSON.into())], b"{}".to_vec())
        }
        (Mode::Status(code, body), _) => {
            let es = sh.kind == Kind::Elasticsearch;
            let ct = if es { JSON } else { TEXT };
            (code, vec![("Content-Type", ct.into())], body.into_bytes())
        }
        (Mode::RetryAfter(secs), _) => {
            let (code, mut headers, body) = text(429, "too many requests");
            headers.push(("Retry-After", secs.to_string()));
            (code, headers, body)
        }
        (Mode::Hang, _) => {
            let hung = |s: &mut State| s.generation == generation && !s.stopping;
            drop(sh.changed.wait_while(sh.state(), hung));
            text(503, "fake receiver: released a hung request")
        }
        (Mode::Refuse, _) => text(503, "fake receiver: refusing"),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json; charset=UTF-8";

fn text(code: u16, body: &str) -> Reply {
    (code, vec![("Content-Type", TEXT.into())], body.into())
}

fn media_type(req: &Request) -> String {
    let ct = req.header("Content-Type").unwrap_or("").split(';').next();
    ct.unwrap_or("").trim().to_ascii_lowercase()
}

fn loki_push(req: &Request) -> Result<Vec<LokiEntry>, Reply> {
    if req.path.split('?').next() != Some("/loki/api/v1/push") {
        return Err(text(404, "404 page not found"));
    }
    if req.method != "POST" {
        return Err(text(405, "405 method not allowed"));
    }
    if media_type(req) != "application/json" {
        return Err(text(415, "this fake takes only application/json"));
    }
    parse_push(&req.body).map_err(|why| text(400, &why))
}

fn label_name_ok(name: &str) -> bool {
    let ok =
        |c: char, first: bool| c == '_' || c.is_ascii_alphabetic() || !first && c.is_ascii_digit();
    let mut c = name.chars();
    c.next().is_some_and(|f| ok(f, true)) && c.all(|c| ok(c, false))
}

fn parse_push(body: &[u8]) -> Result<Vec<LokiEntry>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("loghttp: {e}"))?;
    let mut out = vec![];
    for s in v["streams"].as_array().ok_or("no \"streams\" array")? {
        let labels = s["stream"].as_object();
        let labels = labels.ok_or("no \"stream\" label object")?;
        if labels.is_empty() {
            return Err("error at least one label pair is required per stream".into());
        }
        let mut map = BTreeMap::new();
        for (k, v) in labels {
            let v = v.as_str().filter(|_| label_name_ok(k));
            let v = v.ok_or(format!("error parsing labels: invalid label name {k:?}"))?;
            map.insert(k.clone(), v.to_string());
        }
        let mut last = i64::MIN;
        for e in s["values"].as_array().ok_or("no \"values\" array")? {
            let arity = e.as_array().map_or(0, Vec::len);
            let arity_ok = arity == 2 || arity == 3 && e[2].is_object();
            let line = e[1].as_str().filter(|_| arity_ok);
            let line = line.ok_or("an entry is not [\"<ns>\", \"<line>\"(, {metadata})]")?;
            let digits = |t: &&str| t.bytes().all(|b| b.is_ascii_digit());
            let ts = e[0].as_str().filter(digits);
            let ts = ts.and_then(|t| t.parse().ok());
            let ts: i64 = ts.ok_or(format!("error parsing timestamp {}", e[0]))?;
            if ts < last {
                let l: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let l = l.join(", ");
                return Err(format!(
                    "entry with timestamp {ts} ignored, reason: 'entry out of order' for stream: {{{l}}}"
                ));
            }
            last = ts;
            let (labels, ts_nanos, line) = (map.clone(), ts, line.to_string());
            out.push(LokiEntry {
                labels,
                ts_nanos,
                line,
            });
        }
    }
    Ok(out)
}

fn es_json(code: u16, v: &Value) -> Reply {
    let ct = ("Content-Type", JSON.into());
    let product = ("X-Elastic-Product", "Elasticsearch".into());
    (code, vec![ct, product], v.to_string().into_bytes())
}

fn es_error(code: u16, kind: &str, reason: &str) -> Reply {
    let cause = json!({"type": kind, "reason": reason});
    let error = json!({"root_cause": [cause], "type": kind, "reason": reason});
    es_json(code, &json!({"error": error, "status": code}))
}

fn bulk(sh: &Shared, req: &Request) -> Reply {
    match (req.method.as_str(), req.path.split('?').next()) {
        ("GET", Some("/")) => {
            let version = json!({"number": "8.13.4", "build_flavor": "default"});
            let tagline = "You Know, for Search";
            return es_json(
                200,
                &json!({"name": "fake", "version": version, "tagline": tagline}),
            );
        }
        ("POST" | "PUT", Some("/_bulk")) => {}
        _ => return es_error(404, "no_handler_found_exception", "no handler found"),
    }
    let ct = media_type(req);
    if ct != "application/x-ndjson" {
        let why = format!("Content-Type header [{ct}] is not supported");
        return es_json(406, &json!({"error": why, "status": 406}));
    }
    let pairs = match parse_bulk(&req.body) {
        Ok(pairs) => pairs,
        Err(why) => return es_error(400, "illegal_argument_exception", &why),
    };
    let failures = sh.state().item_failures.clone();
    let (mut errors, mut items, mut docs) = (false, vec![], vec![]);
    for (op, index, doc) in pairs {
        let id = format!("fake{}", sh.next_id.fetch_add(1, SeqCst));
        let mut item = json!({"_index": index, "_id": id, "status": 201});
        let failure = match &doc {
            Some(doc) => failures.as_ref().and_then(|f| f(doc)),
            None => Some((400, "failed to parse: not a JSON object".into())),
        };
        match (failure, doc) {
            (Some((status, reason)), _) => {
                errors = true;
                let kind = match status {
                    429 => "es_rejected_execution_exception",
                    400 => "mapper_parsing_exception",
                    409 => "version_conflict_engine_exception",
                    _ => "exception",
                };
                item["status"] = status.into();
                item["error"] = json!({"type": kind, "reason": reason});
            }
            (None, Some(doc)) => {
                (item["result"], item["_version"]) = ("created".into(), 1.into());
                docs.push(EsDoc { index, doc });
            }
            (None, None) => unreachable!("a document that is not JSON always fails"),
        }
        items.push(json!({ op: item }));
    }
    sh.state().es.extend(docs);
    es_json(200, &json!({"took": 1, "errors": errors, "items": items}))
}

/// (action, index, document if it is a JSON object) per pair of NDJSON lines.
fn parse_bulk(body: &[u8]) -> Result<Vec<(String, String, Option<Value>)>, String> {
    let body = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let newline = "The bulk request must be terminated by a newline [\\n]";
    let lines: Vec<&str> = body
        .strip_suffix('\n')
        .ok_or(newline)?
        .split('\n')
        .collect();
    let mut out = vec![];
    for (n, pair) in lines.chunks(2).enumerate() {
        let malformed = format!("Malformed action/metadata line [{}]", 2 * n + 1);
        let action: Value = serde_json::from_str(pair[0]).map_err(|_| malformed.clone())?;
        let action = action.as_object().filter(|o| o.len() == 1);
        let (op, meta) = action.and_then(|o| o.iter().next()).ok_or(&malformed)?;
        if op != "create" && op != "index" {
            return Err(format!("this fake takes only create/index, not [{op}]"));
        }
        let index = meta["_index"].as_str();
        let index = index.ok_or("Validation Failed: 1: index is missing;")?;
        let doc = pair.get(1).ok_or(format!("{malformed}: no document"))?;
        let doc = serde_json::from_str(doc).ok().filter(Value::is_object);
        out.push((op.clone(), index.to_string(), doc));
    }
    Ok(out)
}
