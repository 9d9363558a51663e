//! The container image (Dockerfile, built by scripts/build-image.sh; scripts/test.sh sets
//! LOG_CAPTURER_IMAGE): as the non-root user 65534 with the host's socket and its own data
//! volume, it captures other containers exactly once, never its own, serves /health, and
//! `docker stop` (SIGTERM to PID 1) ends it with exit code 0 at once.
//!
//! Containers run with `--network none`, so the endpoints are reached from a busybox
//! container sharing the capturer's network namespace, and files are read with `docker cp`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{docker, image, metric_value, unique, wait_for, Container};

const SOCKET: &str = "/var/run/docker.sock";
const CONFIG_IN_IMAGE: &str = "/etc/log-capturer/log-capturer.toml";
const DATA_DIR: &str = "/var/lib/log-capturer";
const WAIT: Duration = Duration::from_secs(30);

/// The image under test. Missing is a failure, never a skip.
fn capturer_image() -> String {
    let img = match std::env::var("LOG_CAPTURER_IMAGE") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "LOG_CAPTURER_IMAGE is not set: run scripts/test.sh, which builds the image \
             (scripts/build-image.sh) and sets it; or run scripts/build-image.sh and then \
             LOG_CAPTURER_IMAGE=log-capturer:local cargo test --features docker-tests --test docker image"
        ),
    };
    assert!(
        try_docker(&["image", "inspect", &img]).is_some(),
        "image {img} (LOG_CAPTURER_IMAGE) does not exist: build it with scripts/build-image.sh"
    );
    img
}

/// `docker ARGS`: stdout on success, None on failure.
fn try_docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A file of a (running or stopped) container, through `docker cp` (a tar stream).
fn read_file(container: &str, path: &str) -> Option<String> {
    let mut cp = Command::new("docker")
        .args(["cp", &format!("{container}:{path}"), "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let tar = Command::new("tar")
        .args(["-xOf", "-"])
        .stdin(cp.stdout.take()?)
        .stderr(Stdio::null())
        .output();
    let cp_ok = cp.wait().map(|s| s.success()).unwrap_or(false);
    let tar = tar.ok()?;
    (cp_ok && tar.status.success()).then(|| String::from_utf8_lossy(&tar.stdout).into_owned())
}

fn records(container: &str) -> Vec<Value> {
    read_file(container, &format!("{DATA_DIR}/logs/containers.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `GET path` on the capturer's 127.0.0.1:8401, with busybox wget from a container in
/// its network namespace. None unless the answer is 2xx. (`timeout`, not wget's own `-T`:
/// that one crashes Debian's static busybox.)
fn http_get_in(container: &str, path: &str) -> Option<String> {
    let network = format!("container:{container}");
    let url = format!("http://127.0.0.1:8401{path}");
    try_docker(&[
        "run",
        "--rm",
        "--network",
        &network,
        &image(),
        "timeout",
        "10",
        "wget",
        "-q",
        "-O",
        "-",
        &url,
    ])
}

/// `docker logs` (the capturer logs to stderr).
fn logs(container: &str) -> String {
    Command::new("docker")
        .args(["logs", container])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
}

fn inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, container])
        .trim()
        .to_string()
}

/// The capturer container, removed with its anonymous data volume when dropped.
struct Detached {
    name: String,
    id: String,
}

impl Detached {
    fn run(name: &str, extra: &[&str], image: &str) -> Detached {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        args.push(image);
        let id = docker(&args).trim().to_string();
        Detached {
            name: name.to_string(),
            id,
        }
    }

    /// Panics with the container's log when it is no longer running.
    fn assert_running(&self) {
        if inspect(&self.id, "{{.State.Running}}") != "true" {
            panic!(
                "capturer container {} exited (code {}); its log:\n{}",
                self.name,
                inspect(&self.id, "{{.State.ExitCode}}"),
                logs(&self.id)
            );
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn image_is_nonroot_static_and_carries_the_container_config() {
    let _daemon = crate::util::shared_daemon();
    let img = capturer_image();
    let config: Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &img,
    ]))
    .expect("image config JSON");
    assert_eq!(config["User"], "65534:65534", "numeric non-root user");
    assert!(config["ExposedPorts"].get("8401/tcp").is_some(), "{config}");
    assert!(config["Volumes"].get(DATA_DIR).is_some(), "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/log-capturer", "--config", CONFIG_IN_IMAGE])
    );

    // The binary is this crate's, and the baked config is config/container.toml (a stale
    // image fails here: rebuild it with scripts/build-image.sh).
    let version = docker(&["run", "--rm", "--network", "none", &img, "--version"]);
    assert_eq!(
        version.trim(),
        format!("log-capturer {}", env!("CARGO_PKG_VERSION"))
    );
    let repo_config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/container.toml"
    ))
    .expect("config/container.toml");
    let cid = docker(&["create", "--network", "none", &img])
        .trim()
        .to_string();
    let baked = read_file(&cid, CONFIG_IN_IMAGE);
    let _ = try_docker(&["rm", "-v", &cid]);
    assert_eq!(
        baked.as_deref(),
        Some(repo_config.as_str()),
        "{CONFIG_IN_IMAGE} in {img} differs from config/container.toml: rebuild the image"
    );

    let effective = docker(&["run", "--rm", "--network", "none", &img, "--check-config"]);
    for line in [
        "listen = \"0.0.0.0:8401\"",
        "path = \"/var/lib/log-capturer/positions.json\"",
        "path = \"/var/lib/log-capturer/logs/containers.jsonl\"",
    ] {
        assert!(
            effective.lines().any(|l| l == line),
            "effective config lacks {line}:\n{effective}"
        );
    }
}

#[test]
fn image_captures_others_exactly_once_never_itself_and_exits_0_on_docker_stop() {
    image_captures(false);
}

/// The same, reading the json-file logs from disk as docs/DEPLOY.md says: the root group
/// added and `/var/lib/docker/containers` mounted read-only. No logs request is sent.
#[test]
fn image_in_files_mode_reads_the_logs_from_disk() {
    image_captures(true);
}

fn image_captures(files: bool) {
    let _daemon = crate::util::shared_daemon();
    let img = capturer_image();
    let prefix = unique(if files { "imagef" } else { "image" });

    // The image's own config, restricted to this test's containers. The capturer's name
    // matches the include glob too: only self-exclusion keeps it out.
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/container.toml"
    ))
    .expect("config/container.toml");
    let config_path = dir.path().join("log-capturer.toml");
    std::fs::write(
        &config_path,
        format!(
            "{base}\n[containers]\ninclude_names = [\"{prefix}-*\"]\n{}\
             [pipeline]\nbatch_timeout = \"50ms\"\n",
            if files { "read_from = \"files\"\n" } else { "" }
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644))
        .expect("chmod config");
    let gid = std::fs::metadata(SOCKET)
        .expect("the Docker socket")
        .gid()
        .to_string();
    let socket_mount = format!("{SOCKET}:{SOCKET}:ro");
    let config_mount = format!("{}:{CONFIG_IN_IMAGE}:ro", config_path.display());

    // Positions and the file sink go to the image's own data volume (owned by 65534):
    // an unwritable positions file would be fatal at start. Hardened as docs/DEPLOY.md
    // and deploy/compose run it: read-only root, no capabilities, the host's UTS
    // namespace (records carry the host's name).
    let mut args = vec![
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--uts",
        "host",
        "--group-add",
        &gid,
        "-v",
        &socket_mount,
        "-v",
        &config_mount,
    ];
    if files {
        args.extend([
            "--group-add",
            "0",
            "-v",
            "/var/lib/docker/containers:/var/lib/docker/containers:ro",
        ]);
    }
    let cap = Detached::run(&format!("{prefix}-capturer"), &args, &img);
    wait_for(WAIT, "the capturer container's /health ok", || {
        cap.assert_running();
        let body = http_get_in(&cap.id, "/health")?;
        let health: Value = serde_json::from_str(&body).ok()?;
        (health["status"] == "ok").then_some(())
    });
    assert_eq!(
        inspect(&cap.id, "{{.Config.User}}"),
        "65534:65534",
        "runs as the image's non-root user"
    );

    let producer = Container::run(
        &format!("{prefix}-producer"),
        &[],
        "for i in $(seq 1 200); do echo \"out $i\"; done; echo 'err 1' >&2",
    );
    producer.wait();
    let of_producer = |recs: &[Value]| -> Vec<Value> {
        recs.iter()
            .filter(|r| r["container_name"] == producer.name.as_str())
            .cloned()
            .collect()
    };
    wait_for(WAIT, "201 records of the producer", || {
        cap.assert_running();
        (of_producer(&records(&cap.id)).len() >= 201).then_some(())
    });
    // Let a duplicate, if any, arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    let all = records(&cap.id);
    let recs = of_producer(&all);
    assert_eq!(recs.len(), 201, "every line exactly once");
    let out: Vec<&str> = recs
        .iter()
        .filter(|r| r["stream"] == "stdout")
        .filter_map(|r| r["message"].as_str())
        .collect();
    let want: Vec<String> = (1..=200).map(|i| format!("out {i}")).collect();
    assert_eq!(out, want, "stdout in order");
    let err: Vec<&str> = recs
        .iter()
        .filter(|r| r["stream"] == "stderr")
        .filter_map(|r| r["message"].as_str())
        .collect();
    assert_eq!(err, ["err 1"]);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name")
        .trim()
        .to_string();
    for r in &recs {
        assert_eq!(r["container_id"], producer.id.as_str());
        assert_eq!(r["image"], image().as_str());
        assert_eq!(
            r["host"],
            hostname.as_str(),
            "host is the host's name (--uts host)"
        );
    }

    // Never itself: its own log (stderr, which Docker keeps like any container's) grew
    // while it ran, yet no record, stream or stream start is its own.
    assert!(
        logs(&cap.id).contains(&format!("following {}", producer.name)),
        "the capturer logged while it ran:\n{}",
        logs(&cap.id)
    );
    assert_eq!(
        all.len(),
        201,
        "only the producer's records: {:?}",
        all.iter()
            .filter(|r| r["container_name"] != producer.name.as_str())
            .take(3)
            .collect::<Vec<_>>()
    );
    assert!(all
        .iter()
        .all(|r| r["container_id"] != cap.id.as_str() && r["container_name"] != cap.name.as_str()));
    let metrics = http_get_in(&cap.id, "/metrics").expect("/metrics");
    assert_eq!(
        metric_value(&metrics, "log_capturer_stream_starts_total"),
        1.0,
        "one stream started (the producer's), none for the capturer itself"
    );
    let streams = http_get_in(&cap.id, "/streams").expect("/streams");
    assert!(!streams.contains(&cap.id), "own stream listed: {streams}");
    let logs_requests = metrics
        .lines()
        .find(|l| l.starts_with("log_capturer_docker_http_requests_total{endpoint=\"logs\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    if files {
        assert_eq!(logs_requests, Some(0.0), "files mode sent a logs request");
        // As uid 65534 in group root, the 0710 log directory cannot be watched: its log
        // file is, so it still wakes on inotify (README, "Reading from disk").
        assert!(
            metrics.contains("log_capturer_inotify_fallbacks_total 0"),
            "the follower fell back to polling"
        );
    } else {
        assert!(logs_requests >= Some(1.0));
    }

    // docker stop: SIGTERM to PID 1, SIGKILL only after 60 s. Exit code 0 is the clean
    // exit on SIGTERM (137 would mean it was killed); a stop takes about 2 s at most, so
    // 10 s (5x) only catches one that hangs.
    let started = Instant::now();
    docker(&["stop", "-t", "60", &cap.id]);
    let took = started.elapsed();
    let code = inspect(&cap.id, "{{.State.ExitCode}}");
    let log = logs(&cap.id);
    assert_eq!(code, "0", "exit code after docker stop; log:\n{log}");
    assert!(took < Duration::from_secs(10), "docker stop took {took:?}");
    assert!(log.contains("log-capturer stopped"), "log:\n{log}");

    // Positions were flushed to the data volume for what was delivered.
    let positions = read_file(&cap.id, &format!("{DATA_DIR}/positions.json"))
        .expect("positions.json in the data volume");
    let positions: Value = serde_json::from_str(&positions).expect("positions JSON");
    let position = &positions["containers"][&producer.id];
    assert!(
        position.is_object(),
        "producer's position persisted: {positions}"
    );
    assert_eq!(
        position.get("file").is_some(),
        files,
        "a file offset exactly in files mode: {positions}"
    );
    assert_eq!(records(&cap.id).len(), 201, "nothing more written at stop");
}
