//! The events thread: follows `GET /events` (container start/die/destroy/rename) and feeds
//! the supervisor. On every (re)connect it tells the supervisor to reconcile with a full
//! container list, because the daemon replays at most its last 256 events. Reconnects
//! back off with jitter; nothing here is fatal.

use std::time::Duration;

use crossbeam_channel::Sender;

use super::supervisor::SupEvent;
use crate::backoff::Backoff;
use crate::docker::client::{DockerClient, ReadOutcome};
use crate::docker::types::Event;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Longest event line we accept; longer ones are skipped.
const MAX_EVENT_LINE: usize = 1 << 20;

/// Runs until shutdown.
pub fn run(client: &DockerClient, tx: &Sender<SupEvent>, metrics: &Metrics, shutdown: &Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    let mut connected_before = false;
    while !shutdown.is_triggered() {
        match client.events(None) {
            Ok(mut body) => {
                if connected_before {
                    metrics.events_reconnects.inc();
                }
                connected_before = true;
                backoff.reset();
                if tx.send(SupEvent::EventsConnected).is_err() {
                    return;
                }
                let mut line = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                let end = loop {
                    match body.read(&mut buf) {
                        Ok(ReadOutcome::Data(n)) => {
                            if !feed(&mut line, &buf[..n], tx) {
                                return;
                            }
                        }
                        Ok(ReadOutcome::TimedOut) => {
                            if shutdown.is_triggered() {
                                return;
                            }
                        }
                        Ok(ReadOutcome::Eof) => {
                            break "the daemon closed the events stream".to_string()
                        }
                        Err(e) => break e.to_string(),
                    }
                };
                if shutdown.is_triggered() {
                    return;
                }
                log::warn!("events: {end}; reconnecting");
            }
            Err(e) => {
                if shutdown.is_triggered() {
                    return;
                }
                log::warn!("events: {e}; retrying");
            }
        }
        if tx.send(SupEvent::EventsDown).is_err() {
            return;
        }
        if shutdown.wait_timeout(backoff.next_delay()) {
            return;
        }
    }
}

/// Splits `data` into JSON lines and forwards each event; false when the supervisor is gone.
fn feed(line: &mut Vec<u8>, data: &[u8], tx: &Sender<SupEvent>) -> bool {
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
            Ok(ev) => {
                if tx.send(SupEvent::Docker(ev)).is_err() {
                    return false;
                }
            }
            Err(e) => log::warn!("events: undecodable event skipped: {e}"),
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
        let text = br#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"x"}},"timeNano":5}
garbage
{"Type":"container","Action":"die","Actor":{"ID":"abc"}}
"#;
        let mut line = Vec::new();
        for chunk in text.chunks(7) {
            assert!(feed(&mut line, chunk, &tx));
        }
        let got: Vec<String> = rx
            .try_iter()
            .map(|e| match e {
                SupEvent::Docker(ev) => format!("{} {}", ev.action, ev.actor.id),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(got, vec!["start abc", "die abc"]);
    }
}
