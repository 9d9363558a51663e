//! The events thread: follows `GET /events` (container start/die/destroy/rename) and feeds
//! the supervisor. On every (re)connect it tells the supervisor to reconcile with a full
//! container list, because the daemon replays at most its last 256 events. Reconnects
//! back off with jitter; nothing here is fatal.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::record::ContainerId;
use super::supervisor::SupEvent;
use crate::backoff::Backoff;
use crate::docker::client::{BodyStream, DockerClient, ReadOutcome};
use crate::docker::error::DockerError;
use crate::docker::types::Event;
use crate::health::Health;
use crate::metrics::Endpoint;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Longest event line we accept; longer ones are skipped.
const MAX_EVENT_LINE: usize = 1 << 20;

/// A stream that stayed up this long resets the reconnect backoff.
const STABLE_STREAM: Duration = Duration::from_secs(10);

/// Runs until shutdown. Reports what is wrong to `health` (Docker unreachable, or the
/// events stream failing and why).
pub fn run(
    client: &DockerClient,
    tx: &Sender<SupEvent>,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    let mut connected_before = false;
    while !shutdown.is_triggered() {
        let problem = match client.events(None) {
            Ok(mut body) => {
                if connected_before {
                    metrics.events_reconnects.inc();
                }
                connected_before = true;
                health.set_events_problem(None);
                if tx.send(SupEvent::EventsConnected).is_err() {
                    return;
                }
                let started = Instant::now();
                let end = match pump(&mut body, tx, metrics, shutdown) {
                    Some(end) => end,
                    None => return,
                };
                if started.elapsed() >= STABLE_STREAM {
                    backoff.reset();
                }
                (true, end)
            }
            Err(e) => (!matches!(e, DockerError::Transport { .. }), e.to_string()),
        };
        if shutdown.is_triggered() {
            return;
        }
        let (docker_answers, why) = problem;
        log::warn!("events: {why}; reconnecting");
        health.set_events_problem(Some(why));
        if tx.send(SupEvent::EventsDown { docker_answers }).is_err() {
            return;
        }
        if shutdown.wait_timeout(backoff.next_delay()) {
            return;
        }
    }
}

/// Reads one events body until it ends (`Some(why)`) or the capturer stops (`None`).
fn pump(
    body: &mut BodyStream,
    tx: &Sender<SupEvent>,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Option<String> {
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match body.read(&mut buf) {
            Ok(ReadOutcome::Data(n)) => {
                if !feed(&mut line, &buf[..n], tx, metrics) {
                    return None;
                }
            }
            Ok(ReadOutcome::TimedOut) => {
                if shutdown.is_triggered() {
                    return None;
                }
            }
            Ok(ReadOutcome::Eof) => return Some("the daemon closed the events stream".to_string()),
            Err(e) => return Some(e.to_string()),
        }
    }
}

/// Splits `data` into JSON lines and forwards each event; false when the supervisor is gone.
fn feed(line: &mut Vec<u8>, data: &[u8], tx: &Sender<SupEvent>, metrics: &Metrics) -> bool {
    for chunk in data.split_inclusive(|&b| b == b'\n') {
        if line.len() + chunk.len() <= MAX_EVENT_LINE {
            line.extend_from_slice(chunk);
        }
        if chunk.last() != Some(&b'\n') {
            continue;
        }
        let text = std::mem::take(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Event>(&text) {
            Ok(ev) if ContainerId::is_docker_id(&ev.actor.id) => {
                if tx.send(SupEvent::Docker(ev)).is_err() {
                    return false;
                }
            }
            Ok(ev) => {
                metrics.request_error(Endpoint::Events);
                log::warn!(
                    "events: event without a container ID skipped: {:?}",
                    ev.action
                );
            }
            Err(e) => {
                metrics.request_error(Endpoint::Events);
                log::warn!("events: undecodable event skipped: {e}");
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let metrics = Metrics::new().unwrap();
        let id = "a".repeat(64);
        let text = format!(
            "{{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{{\"ID\":\"{id}\",\"Attributes\":{{\"name\":\"x\"}}}},\"timeNano\":5}}\n\
             garbage\n\
             {{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{{\"ID\":\"\"}}}}\n\
             {{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{{\"ID\":\"{id}\"}}}}\n"
        );
        let mut line = Vec::new();
        for chunk in text.as_bytes().chunks(7) {
            assert!(feed(&mut line, chunk, &tx, &metrics));
        }
        let got: Vec<String> = rx
            .try_iter()
            .map(|e| match e {
                SupEvent::Docker(ev) => format!("{} {}", ev.action, &ev.actor.id[..3]),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(got, vec!["start aaa", "die aaa"]);
        assert_eq!(
            metrics.docker_errors.with_label_values(&["events"]).get(),
            2,
            "garbage and the empty ID"
        );
    }
}
