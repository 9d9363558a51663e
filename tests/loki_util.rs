//! Helpers of the real-Loki tests (tests/loki_real.rs): where the Loki instances are
//! (environment variables set by scripts/test.sh), a Loki of a test's own started from
//! `LOKI_BIN` with the repository's config (tests/loki/loki.yaml), reading entries back
//! through `/loki/api/v1/query_range` page by page, and per-sink metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use ureq::Agent;

use crate::util::{free_port, http_get, signal, wait_for, Capturer};

/// A variable scripts/test.sh sets when it started a Loki; with the `real-loki` feature
/// on, its absence is a failure, never a skip.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the real-Loki tests (feature real-loki) need the Loki \
             instances scripts/test.sh starts (LOKI_URL, LOKI_MT_URL, LOKI_BIN)"
        )
    })
}

/// One entry read back: its stream's labels, its time in ns and its line.
#[derive(Clone, Debug)]
pub struct Entry {
    pub labels: BTreeMap<String, String>,
    pub ns: u128,
    pub line: String,
}

/// A Loki's query side, for one tenant (or none when auth is off).
pub struct LokiQuery {
    agent: Agent,
    pub url: String,
    pub tenant: Option<String>,
}

/// Loki's default `max_entries_limit_per_query`.
const PAGE: usize = 5000;

impl LokiQuery {
    pub fn new(url: &str, tenant: Option<&str>) -> LokiQuery {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        LokiQuery {
            agent: Agent::new_with_config(config),
            url: url.trim_end_matches('/').to_string(),
            tenant: tenant.map(str::to_string),
        }
    }

    /// GET `path` with `query`; (status, body).
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> (u16, String) {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        for (k, v) in query {
            req = req.query(*k, v);
        }
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let mut resp = req.call().expect("a Loki answer");
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .expect("a Loki body");
        (status, body)
    }

    /// POST a push body as it is; (status, body).
    pub fn push(&self, body: &[u8]) -> (u16, String) {
        let mut req = self
            .agent
            .post(format!("{}/loki/api/v1/push", self.url))
            .header("Content-Type", "application/json");
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let mut resp = req.send(body).expect("a Loki answer");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// Every entry matching `selector` in the last hour, in time order, page by page: a
    /// full page ends at a time that may go on in the next, so the next page starts at
    /// that time and this one keeps only what came before it.
    pub fn entries(&self, selector: &str) -> Vec<Entry> {
        let end = now_ns() + 60_000_000_000;
        let mut start = now_ns() - 3_600_000_000_000;
        let mut all = Vec::new();
        loop {
            let query = [
                ("query", selector.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("limit", PAGE.to_string()),
                ("direction", "forward".to_string()),
            ];
            let (status, body) = self.get("/loki/api/v1/query_range", &query);
            assert_eq!(status, 200, "query_range {selector}: {body}");
            let mut page = parse_streams(&body);
            page.sort_by_key(|e| e.ns);
            if page.len() < PAGE {
                all.extend(page);
                return all;
            }
            let last = page.last().map_or(start, |e| e.ns);
            assert!(last > start, "more than {PAGE} entries at one nanosecond");
            all.extend(page.into_iter().filter(|e| e.ns < last));
            start = last;
        }
    }

    /// Waits until `selector` has at least `n` entries; returns them all.
    pub fn wait_entries(&self, selector: &str, n: usize, timeout: Duration) -> Vec<Entry> {
        // The count last seen goes into the timeout's message: how far it got.
        let seen = std::cell::Cell::new(0);
        let what = || format!("{n} entries of {selector}");
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(timeout, &what(), || {
                let e = self.entries(selector);
                seen.set(e.len());
                (e.len() >= n).then_some(e)
            })
        }));
        got.unwrap_or_else(|_| {
            panic!(
                "{} not there after {timeout:?}: {} were",
                what(),
                seen.get()
            )
        })
    }
}

fn parse_streams(body: &str) -> Vec<Entry> {
    let v: Value = serde_json::from_str(body).expect("query_range answers JSON");
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let labels: BTreeMap<String, String> = s["stream"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        for e in s["values"].as_array().into_iter().flatten() {
            out.push(Entry {
                labels: labels.clone(),
                ns: e[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0),
                line: e[1].as_str().unwrap_or("").to_string(),
            });
        }
    }
    out
}

pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// How many times each line occurs among `entries`.
pub fn counts<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for e in entries {
        *seen.entry(e.line.clone()).or_default() += 1;
    }
    seen
}

/// The lines `prefix 1` .. `prefix n` each once: (missing, extra or repeated).
pub fn once(seen: &BTreeMap<String, usize>, prefix: &str, n: usize) -> (usize, usize) {
    let missing = (1..=n)
        .filter(|i| !seen.contains_key(&format!("{prefix} {i}")))
        .count();
    let repeated = seen
        .iter()
        .filter(|(l, _)| l.starts_with(&format!("{prefix} ")))
        .map(|(_, c)| c - 1)
        .sum();
    (missing, repeated)
}

/// A metric's value for one sink (`name{sink="..."}`).
pub fn sink_metric(cap: &Capturer, name: &str, sink: &str) -> f64 {
    let prefix = format!("{name}{{sink=\"{sink}\"}} ");
    cap.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A Loki of a test's own, from `LOKI_BIN` with tests/loki/loki.yaml (auth off), on
/// free loopback ports and a data directory that outlives a stop (for a restart).
pub struct OwnLoki {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    grpc: u16,
}

impl OwnLoki {
    pub fn start() -> OwnLoki {
        let mut loki = OwnLoki {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            grpc: free_port(),
        };
        loki.launch();
        loki
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) on the same ports and data, and waits for /ready.
    pub fn launch(&mut self) {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("loki.log"))
            .expect("open the Loki log");
        let child = Command::new(env("LOKI_BIN"))
            .arg(format!(
                "-config.file={}",
                repo.join("tests/loki/loki.yaml").display()
            ))
            .arg("-config.expand-env=true")
            .env("LOKI_DATA", self.dir.path().join("data"))
            .env("LOKI_HTTP_PORT", self.port.to_string())
            .env("LOKI_GRPC_PORT", self.grpc.to_string())
            .env("LOKI_AUTH", "false")
            .env("LOKI_OVERRIDES", repo.join("tests/loki/overrides.yaml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start LOKI_BIN");
        self.child = Some(child);
        wait_for(Duration::from_secs(120), "own Loki /ready", || {
            http_get(self.port, "/ready").filter(|(s, b)| *s == 200 && b.trim() == "ready")
        });
    }

    /// SIGTERM to its own PID, and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            wait_for(Duration::from_secs(60), "Loki exit after SIGTERM", || {
                child.try_wait().ok().flatten()
            });
        }
    }
}

impl Drop for OwnLoki {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
