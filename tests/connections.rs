//! The bounded keep-alive cache against the real daemon: request/response calls reuse
//! pooled connections instead of dialing the socket each time.

use std::sync::Arc;
use std::time::Duration;

use log_capturer::docker::client::{ClientSettings, DockerClient};
use log_capturer::Metrics;

use crate::util::{unique, Container};

fn client(max_idle: usize) -> (DockerClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let settings = ClientSettings {
        socket: "/var/run/docker.sock".into(),
        max_idle_connections: max_idle,
        idle_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(1),
        api_version: None,
    };
    (DockerClient::new(settings, metrics.clone()), metrics)
}

#[test]
fn hundred_list_and_inspect_calls_reuse_connections() {
    let _daemon = crate::util::shared_daemon();
    let c = Container::run(&unique("conn"), &[], "sleep 30");
    let (client, metrics) = client(4);
    for i in 0..100 {
        if i % 2 == 0 {
            client.list_containers(true).expect("list");
        } else {
            client.inspect(&c.id).expect("inspect");
        }
    }
    // One call at a time: each gives its connection back before the next takes it, and
    // dockerd keeps idle connections open, so the first connection serves them all.
    let opened = metrics.docker_connections_opened.get();
    assert_eq!(
        opened, 1,
        "{opened} connections opened for 101 sequential calls"
    );
    let requests: u64 = ["version", "containers", "inspect"]
        .iter()
        .map(|e| metrics.docker_requests.with_label_values(&[e]).get())
        .sum();
    assert_eq!(requests, 101, "100 calls plus one version negotiation");
    assert_eq!(metrics.docker_idle_connections.get(), 1);
    assert_eq!(metrics.docker_active_connections.get(), 0);
}

#[test]
fn not_found_is_classified() {
    let _daemon = crate::util::shared_daemon();
    let (client, metrics) = client(2);
    let err = client
        .inspect("no-such-container-for-sure")
        .expect_err("404");
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_transient());
    assert_eq!(
        metrics.docker_errors.with_label_values(&["inspect"]).get(),
        1
    );
}
