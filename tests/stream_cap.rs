//! `containers.max_streams` (README, Configuration): a container beyond the cap is not
//! dropped. It waits (`log_capturer_streams_waiting`, state `waiting` in `/streams`,
//! `/health` says the cap is reached) and is followed as soon as a slot frees, its lines
//! since it started read exactly once. The case a user reported: a cap of 3, eight
//! containers writing 200 lines each (600 of the 1,600 lines were lost before).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::util::{http_get, shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn containers_beyond_the_cap_wait_and_lose_nothing() {
    let _daemon = shared_daemon();
    let base = unique("cap");
    let cap = Capturer::start(&format!("{base}-*"), "[containers]\nmax_streams = 3\n");
    let n = 200;
    let names: Vec<String> = (0..8).map(|i| format!("{base}-{i}")).collect();
    // Each writes its lines, stays up 10 s (so that more than 3 run at once even where
    // `docker run` is slow), then exits: slots free one after the other.
    let script = format!("for i in $(seq 1 {n}); do echo \"n $i\"; done; sleep 10");
    let _containers: Vec<Container> = names
        .iter()
        .map(|c| Container::run(c, &[], &script))
        .collect();
    let (waiting, streams, health) = wait_for(WAIT, "containers waiting for a slot", || {
        let waiting = cap.metric("log_capturer_streams_waiting");
        (waiting > 0.0).then(|| {
            let streams = cap.streams();
            let health = http_get(cap.port, "/health")
                .map(|(_, b)| b)
                .unwrap_or_default();
            (waiting, streams, health)
        })
    });
    let states: Vec<String> = streams.iter().map(|s| s["state"].to_string()).collect();
    assert!(
        states.iter().any(|s| s == "\"waiting\""),
        "/streams: {states:?}"
    );
    assert!(health.contains("max_streams = 3 reached"), "{health}");
    for c in &names {
        cap.wait_records(c, n, WAIT);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for r in cap.records() {
        let name = r["container_name"].as_str().unwrap_or("").to_owned();
        let message = r["message"].as_str().unwrap_or("").to_owned();
        *counts.entry(name).or_default().entry(message).or_default() += 1;
    }
    for c in &names {
        let lines = &counts[c];
        assert_eq!(lines.len(), n, "{c}: every line");
        assert!(lines.values().all(|k| *k == 1), "{c}: each once");
    }
    wait_for(WAIT, "no container waiting", || {
        (cap.metric("log_capturer_streams_waiting") == 0.0).then_some(())
    });
    let health = http_get(cap.port, "/health")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(!health.contains("max_streams"), "{health}");
    eprintln!(
        "max_streams = 3, 8 containers: {waiting} waited at one point; 1,600 of 1,600 lines once"
    );
}
