//! Helpers of the integration tests: the real capturer binary as a child process with a
//! config of the test's own, the real Docker daemon through the docker CLI, a tiny HTTP
//! GET, and /proc readings (FDs, threads) of the child.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The test image built by scripts/build-test-images.sh.
pub fn image() -> String {
    std::env::var("LOG_CAPTURER_TEST_IMAGE")
        .unwrap_or_else(|_| "log-capturer-test/busybox:latest".into())
}

/// A name no other test (or earlier run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "lct-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs the docker CLI and returns stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A container that is force-removed when dropped.
pub struct Container {
    pub name: String,
    pub id: String,
}

impl Container {
    /// `docker run -d --network none [extra] IMAGE sh -c SCRIPT`.
    pub fn run(name: &str, extra: &[&str], script: &str) -> Container {
        let image = image();
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&image, "sh", "-c", script]);
        let id = docker(&args).trim().to_string();
        Container {
            name: name.to_string(),
            id,
        }
    }

    /// Waits for the container to exit.
    pub fn wait(&self) {
        docker(&["wait", &self.id]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:port; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Tests share the one Docker daemon; a test that restarts it takes it exclusively.
static DAEMON: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Taken (once, first thing) by every test that uses the daemon.
pub fn shared_daemon() -> std::sync::RwLockReadGuard<'static, ()> {
    DAEMON.read().unwrap_or_else(|e| e.into_inner())
}

/// Taken by a test that stops and starts the daemon.
pub fn exclusive_daemon() -> std::sync::RwLockWriteGuard<'static, ()> {
    DAEMON.write().unwrap_or_else(|e| e.into_inner())
}

/// The capturer binary running with a config of the test's own.
pub struct Capturer {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub out: PathBuf,
}

impl Capturer {
    /// Starts the capturer following only containers whose name matches `name_glob`,
    /// writing to a file sink in a temp dir, and waits until /health says ok.
    pub fn start(name_glob: &str, extra_toml: &str) -> Capturer {
        let c = Capturer::spawn(name_glob, extra_toml);
        wait_for(Duration::from_secs(20), "capturer /health ok", || {
            http_get(c.port, "/health").filter(|(s, _)| *s == 200)
        });
        c
    }

    /// Like [`start`](Self::start) without waiting for health.
    pub fn spawn(name_glob: &str, extra_toml: &str) -> Capturer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let out = dir.path().join("out.jsonl");
        let config = format!(
            "{extra_toml}\n[containers]\ninclude_names = [\"{name_glob}\"]\n\
             [positions]\npath = \"{}\"\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n\
             [pipeline]\nbatch_timeout = \"50ms\"\n\
             [[sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.path().join("positions.json").display(),
            out.display()
        );
        let config = merge_sections(&config);
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let child = launch(dir.path());
        Capturer {
            child,
            dir,
            port,
            out,
        }
    }

    /// Starts the process again with the same config, files and port (after a stop),
    /// and waits for /health ok.
    pub fn restart(&mut self) {
        assert!(
            self.child.try_wait().ok().flatten().is_some(),
            "restart after a stop"
        );
        self.child = launch(self.dir.path());
        wait_for(
            Duration::from_secs(20),
            "restarted capturer /health ok",
            || http_get(self.port, "/health").filter(|(s, _)| *s == 200),
        );
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds the process used so far (clock ticks of 10 ms).
    pub fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.split(' ').collect())
            .unwrap_or_default();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // After comm: utime and stime are the 12th and 13th fields; USER_HZ is 100.
        (tick(11) + tick(12)) / 100.0
    }

    /// Every record written so far.
    pub fn records(&self) -> Vec<Value> {
        read_records(&self.out)
    }

    /// Records of one container, in file order.
    pub fn records_of(&self, name: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["container_name"] == name)
            .collect()
    }

    /// Waits until `name` has at least `n` records; returns them.
    pub fn wait_records(&self, name: &str, n: usize, timeout: Duration) -> Vec<Value> {
        wait_for(timeout, &format!("{n} records of {name}"), || {
            let r = self.records_of(name);
            (r.len() >= n).then_some(r)
        })
    }

    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// A metric's value (sum over its label sets).
    pub fn metric(&self, name: &str) -> f64 {
        metric_value(&self.metrics(), name)
    }

    pub fn streams(&self) -> Vec<Value> {
        http_get(self.port, "/streams")
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or_default()
    }

    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// What the process wrote to its stdout (the stdout sink).
    pub fn stdout_records(&self) -> Vec<Value> {
        read_records(&self.dir.path().join("stdout.jsonl"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("capturer.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns its status and how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        signal(self.pid(), "TERM");
        let status = wait_for(timeout, "capturer exit after SIGTERM", || {
            self.child.try_wait().ok().flatten()
        });
        (status, started.elapsed())
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns the binary on `dir`/config.toml; its stderr and stdout are appended to files
/// there, so a restarted process adds to what the earlier one wrote.
fn launch(dir: &Path) -> Child {
    let append = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .expect("open a capture file")
    };
    Command::new(env!("CARGO_BIN_EXE_log-capturer"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("RUST_LOG", "info")
        // The config names the socket: a DOCKER_HOST of the test host must not override it.
        .env_remove("DOCKER_HOST")
        .env_remove("LOG_CAPTURER_TEST_IMAGE")
        .env_remove("LOG_CAPTURER_IMAGE")
        .stdin(Stdio::null())
        .stdout(append("stdout.jsonl"))
        .stderr(append("capturer.log"))
        .spawn()
        .expect("spawn log-capturer")
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// Parses a JSON-lines file; a torn last line is ignored.
pub fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Sums the samples of `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let metric = l.split([' ', '{']).next().unwrap_or("");
            metric == name
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Joins repeated `[section]` headers so a test's extra TOML can add keys to the sections
/// the harness writes; `[[array]]` entries (sinks, rules) are kept apart, in order, last.
fn merge_sections(text: &str) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut bodies: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut current = String::new();
    let mut sinks = Vec::new();
    let mut in_sinks = false;
    for line in text.lines() {
        let t = line.trim();
        // Arrays of tables ([[sinks]], [[rules]]) keep every entry, in order.
        if t.starts_with("[[") {
            in_sinks = true;
            sinks.push(line.to_string());
            continue;
        }
        if t.starts_with('[') {
            in_sinks = false;
            current = t.to_string();
            if !order.contains(&current) {
                order.push(current.clone());
            }
            continue;
        }
        if in_sinks {
            sinks.push(line.to_string());
        } else {
            bodies
                .entry(current.clone())
                .or_default()
                .push(line.to_string());
        }
    }
    let mut out = bodies.remove("").unwrap_or_default().join("\n");
    out.push('\n');
    for section in order {
        out.push_str(&format!("{section}\n"));
        // Keys given twice: the first (the test's own) wins.
        let mut seen = std::collections::HashSet::new();
        for l in bodies.remove(&section).unwrap_or_default() {
            let key = l.split('=').next().unwrap_or("").trim().to_string();
            if key.is_empty() || seen.insert(key) {
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out.push_str(&sinks.join("\n"));
    out.push('\n');
    out
}
