//! No Docker daemon at all: the client classifies an absent socket as a transient error,
//! the capturer stays up and says why on /health, and files mode without a readable
//! `docker_root` is a clear fatal error. Every Docker host here is a path that does not
//! exist, so these run in the offline binary.

use std::sync::Arc;
use std::time::Duration;

use log_capturer::docker::client::{ClientSettings, DockerClient};
use log_capturer::Metrics;

use crate::util::{http_get, wait_for, Capturer};

#[test]
fn unreachable_socket_is_a_transient_error() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let settings = ClientSettings {
        socket: "/nonexistent/docker.sock".into(),
        max_idle_connections: 2,
        idle_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(1),
        api_version: None,
    };
    let client = DockerClient::new(settings, metrics);
    let err = client.ping().expect_err("no socket");
    assert!(err.is_transient(), "{err}");
}

#[test]
fn unreachable_docker_is_not_fatal_and_health_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nothing-here.sock");
    let mut cap = Capturer::spawn(
        "*",
        &format!("[docker]\nhost = \"unix://{}\"\n", socket.display()),
    );
    let (status, body) = wait_for(Duration::from_secs(10), "/health answer", || {
        http_get(cap.port, "/health")
    });
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded");
    let reasons = health["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("docker")),
        "{reasons:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        cap.child.try_wait().unwrap().is_none(),
        "still running while Docker is away"
    );
    assert!(cap.metric("log_capturer_docker_http_errors_total") >= 1.0);
    let (exit, _) = cap.terminate(Duration::from_secs(10));
    assert!(exit.success());
}

#[test]
fn files_mode_with_an_unreadable_docker_root_is_a_clear_fatal_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nothing-here.sock");
    let mut cap = Capturer::spawn(
        "none",
        &format!(
            "[docker]\nhost = \"unix://{}\"\n\
             [containers]\nread_from = \"files\"\ndocker_root = \"/nonexistent/docker\"\n",
            socket.display()
        ),
    );
    let status = wait_for(Duration::from_secs(30), "exit", || {
        cap.child.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(1));
    let log = cap.log();
    assert!(log.contains("/nonexistent/docker/containers"), "{log}");
    assert!(log.contains("auto"), "suggests auto: {log}");
}
