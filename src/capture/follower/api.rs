//! The API source: a follower reads the container's logs endpoint
//! (`/containers/{id}/logs?follow=1&timestamps=1`). It owns the body stream (dropped =
//! closed). A transport error reconnects with backoff from the last consumed frame; a
//! clean end of stream means the container stopped, and is followed by one non-follow
//! re-read because the daemon can drop the final chunk from a follow stream.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::context::{Context, EndReason, FollowerOutcome, QueueClosed, StartFrom};
use crate::backoff::Backoff;
use crate::capture::decode::{LogDecoder, BUSY_READ_BUFFER, FIRST_READ_BUFFER};
use crate::capture::gate::Gate;
use crate::docker::client::{BodyStream, DockerClient, LogsQuery, ReadOutcome, INPUT_BUFFER};
use crate::docker::error::DockerError;
use crate::metrics::Endpoint;

/// A read smaller than this, soon after the previous one, means a busy stream read too
/// eagerly. Half the HTTP input buffer, which caps a read: a read that could not be
/// bigger is never "small".
const COALESCE_BELOW: usize = INPUT_BUFFER / 2;
const BUSY_GAP: Duration = Duration::from_millis(1);
const COALESCE_PAUSE: Duration = Duration::from_micros(500);
/// A body that lasted this long resets the reconnect backoff.
const STABLE_STREAM: Duration = Duration::from_secs(10);

/// One container's logs, read through the API.
pub(super) struct ApiSource<'a> {
    pub ctx: &'a Context,
    pub client: &'a DockerClient,
    /// Bounds how many followers open a logs request at once.
    pub gate: &'a Gate,
}

/// How one request's body ended.
enum BodyEnd {
    Eof,
    Error(DockerError),
    Stopped,
    QueueClosed,
}

impl ApiSource<'_> {
    /// Follows the container until its stream ends for good, or the follower is stopped.
    pub fn follow(self) -> FollowerOutcome {
        let ctx = self.ctx;
        // TTY or not is told from the body's first byte (API 1.41 sends no Content-Type).
        let mut dec = LogDecoder::new(None, ctx.max_line_bytes, ctx.start.resume());
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut first = true;
        let reason = loop {
            if ctx.stopping() {
                break EndReason::Stopped;
            }
            let query = self.query(&dec, first, true);
            let Some(permit) = self.gate.acquire(&ctx.shutdown) else {
                break EndReason::Stopped;
            };
            // The ID is copied out: a rename must not wait for the request to open.
            let id = ctx.meta().id.clone();
            let opened = self.open(id.as_str(), &query);
            drop(permit);
            let body_started = Instant::now();
            let end = match opened {
                Ok(body) => {
                    first = false;
                    ctx.stats.set_state("following");
                    self.pump(body, &mut dec)
                }
                Err(e) => BodyEnd::Error(e),
            };
            // Only a stream that stayed up a while earns a quick reconnect; one that breaks
            // at once (corrupt body, reset) keeps backing off instead of looping.
            if body_started.elapsed() >= STABLE_STREAM {
                backoff.reset();
            }
            match end {
                BodyEnd::Eof => break self.finish(&mut dec),
                BodyEnd::Stopped => break EndReason::Stopped,
                BodyEnd::QueueClosed => break EndReason::QueueClosed,
                BodyEnd::Error(e) if e.is_not_found() || e.is_conflict() => {
                    // Deliver what was read; the container is gone.
                    let _ = ctx.flush(&mut dec);
                    break EndReason::Gone;
                }
                BodyEnd::Error(e) if e.is_not_implemented() => {
                    log::warn!(
                        "not following {}: {e} (label it log-capturer.exclude=true to skip it)",
                        ctx.meta.read().name
                    );
                    break EndReason::Unsupported;
                }
                BodyEnd::Error(_) if ctx.stopping() => break EndReason::Stopped,
                BodyEnd::Error(e) => {
                    let delay = backoff.next_delay();
                    log::warn!("follower {}: {e}; reconnecting in {delay:?}", ctx.short());
                    ctx.stats.set_state("reconnecting");
                    ctx.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    dec.restart();
                    if ctx.shutdown.wait_timeout(delay) {
                        break EndReason::Stopped;
                    }
                }
            }
        };
        ctx.stats.set_state(reason.as_str());
        FollowerOutcome {
            reason,
            position: ctx.resume_position(dec.position()),
        }
    }

    /// After a clean EOF: re-read once without follow from the last consumed frame, then
    /// hand out text left without a newline.
    fn finish(&self, dec: &mut LogDecoder) -> EndReason {
        dec.restart();
        let query = self.query(dec, false, false);
        let id = self.ctx.meta().id.clone();
        match self.open(id.as_str(), &query) {
            Ok(body) => match self.pump(body, dec) {
                BodyEnd::QueueClosed => return EndReason::QueueClosed,
                BodyEnd::Error(e) => log::debug!("follower: final re-read: {e}"),
                BodyEnd::Eof | BodyEnd::Stopped => {}
            },
            Err(e) => log::debug!("follower: final re-read: {e}"),
        }
        self.ctx.finish(dec)
    }

    /// Opens a logs request on a short-lived thread (`threads::run_apart`): the request
    /// path's stack (about 22 KiB deep, against 9 KiB to read the body) is given back when
    /// it ends instead of staying resident in every follower (docs/BENCHMARKS.md).
    fn open(&self, id: &str, query: &LogsQuery) -> Result<BodyStream, DockerError> {
        let name = format!("open-{}", self.ctx.short());
        crate::threads::run_apart(&name, crate::threads::OPENER_STACK, || {
            self.client.logs(id, query)
        })
    }

    fn query(&self, dec: &LogDecoder, first: bool, follow: bool) -> LogsQuery {
        let mut q = LogsQuery {
            follow,
            wake_when_quiet: self.ctx.joins_lines(),
            stdout: self.ctx.streams.stdout,
            stderr: self.ctx.streams.stderr,
            since: None,
            tail: None,
        };
        match (dec.position(), first, self.ctx.start) {
            (Some(p), _, _) => q.since = Some(p.time.to_since_param()),
            (None, true, StartFrom::Since(t)) => q.since = Some(t.to_since_param()),
            (None, true, StartFrom::Tail(n)) => q.tail = Some(n.to_string()),
            _ => {}
        }
        q
    }

    /// Reads one body to its end (or error, or stop).
    fn pump(&self, mut body: BodyStream, dec: &mut LogDecoder) -> BodyEnd {
        let mut last_data = Instant::now();
        loop {
            let spare = dec.buffer().spare();
            let room = spare.len();
            let outcome = body.read(spare);
            match outcome {
                Ok(ReadOutcome::Data(n)) => {
                    dec.buffer().filled(n);
                    if n == room {
                        // More was there than the buffer took: a busy stream reads in
                        // bigger pieces (an idle one keeps its small buffer).
                        dec.buffer().grow_to(BUSY_READ_BUFFER);
                    }
                    // dockerd flushes every message: under load, reading each as it comes
                    // costs a wake-up per line. A short pause lets the socket fill instead;
                    // an idle stream (reads further apart) is never delayed.
                    let now = Instant::now();
                    if n < COALESCE_BELOW && n < room && now.duration_since(last_data) < BUSY_GAP {
                        std::thread::sleep(COALESCE_PAUSE);
                    }
                    last_data = now;
                    if let Err(e) = self.drain(dec, false) {
                        return e;
                    }
                    if self.ctx.tick().is_err() {
                        return BodyEnd::QueueClosed;
                    }
                }
                Ok(ReadOutcome::TimedOut) => {
                    if self.ctx.stopping() {
                        return BodyEnd::Stopped;
                    }
                    // Quiet: a burst's bigger buffer is given back.
                    dec.buffer().shrink_to(FIRST_READ_BUFFER);
                    if self.ctx.tick().is_err() {
                        return BodyEnd::QueueClosed;
                    }
                }
                Ok(ReadOutcome::Eof) => {
                    if let Err(e) = self.drain(dec, true) {
                        return e;
                    }
                    let torn = dec.torn_bytes();
                    if torn > 0 {
                        // The daemon ended the body inside a frame: count it and read again
                        // from the last whole frame.
                        self.ctx.metrics.request_error(Endpoint::Logs);
                        return BodyEnd::Error(DockerError::Protocol {
                            endpoint: Endpoint::Logs,
                            message: format!("body ended inside a frame ({torn} bytes left)"),
                        });
                    }
                    return BodyEnd::Eof;
                }
                Err(e) => return BodyEnd::Error(e),
            }
        }
    }

    fn drain(&self, dec: &mut LogDecoder, at_eof: bool) -> Result<(), BodyEnd> {
        let meta = self.ctx.meta();
        let mut batch = Vec::new();
        let result = dec.drain(at_eof, &mut |o| self.ctx.output(&meta, o, &mut batch));
        // Whatever was decoded goes to the queue, even when the body then turned out corrupt.
        if let Err(QueueClosed) = self.ctx.send(&mut batch) {
            return Err(BodyEnd::QueueClosed);
        }
        result.map_err(|e| {
            self.ctx.metrics.request_error(Endpoint::Logs);
            log::warn!("follower {}: {e}", meta.id.short());
            BodyEnd::Error(DockerError::Protocol {
                endpoint: Endpoint::Logs,
                message: format!("corrupt logs stream: {e}"),
            })
        })
    }
}
