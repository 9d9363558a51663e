//! The endpoint server: `/metrics`, `/health`, `/streams`, over a small HTTP/1.1 server
//! of our own on `std::net`. It binds before anything else starts (a taken port is a fatal
//! start error). One thread accepts; `WORKERS` scoped threads answer one connection at a
//! time each, from a bounded queue (connections beyond it are closed at once). Every
//! connection gets a deadline for its request head (at most 8 KiB, no body accepted) and
//! for writing the answer, then is closed (`Connection: close`). So however many clients
//! connect, or however they misbehave, the thread and FD counts stay bounded and nothing
//! is buffered for them. (tiny_http, used before, spawned a thread per idle connection and
//! kept them, and aborted the process on a request announcing a huge body.)
//!
//! `unblock()` stops it: it raises the stop and connects to the listener once, which
//! ends the accept loop's blocking `accept` (no timer: an idle server never wakes, and a
//! scrape is accepted at once); the queue is closed, and `serve` returns once the workers
//! are joined; a worker spends at most 1 s reading a request and 5 s writing its answer,
//! however slowly the client reads.

pub mod request;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, TrySendError};

use self::request::{head_end, parse_head, Refused, MAX_HEAD};
use crate::capture::streams::StreamRegistry;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::threads;

/// Threads answering connections.
const WORKERS: usize = 2;
/// Accepted connections waiting for a worker, at most.
const QUEUED: usize = 8;
/// Time a client has to send its request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(1);
/// Time a client has to take the whole answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long `unblock` tries to connect to the listener to wake its accept, each attempt.
const WAKE_CONNECT: Duration = Duration::from_secs(1);
/// Attempts to wake the accept loop (a full backlog makes a connect wait).
const WAKE_ATTEMPTS: u32 = 5;

/// What the handlers read.
pub struct State {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub streams: Arc<StreamRegistry>,
}

/// A bound listener.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    stop: AtomicBool,
}

/// Binds `listen` ("ip:port").
pub fn bind(listen: &str) -> Result<Server, String> {
    let err = |e: io::Error| format!("server.listen = {listen:?}: cannot listen on it: {e}");
    let listener = TcpListener::bind(listen).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok(Server {
        listener,
        addr,
        stop: AtomicBool::new(false),
    })
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `serve` return (once the workers finished what they answer): raises the
    /// stop, then connects to the listener, which the accept loop takes as its wake-up.
    pub fn unblock(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let targets = wake_addrs(self.addr);
        let mut last = None;
        for _ in 0..WAKE_ATTEMPTS {
            for to in &targets {
                match TcpStream::connect_timeout(to, WAKE_CONNECT) {
                    Ok(_) => return,
                    Err(e) => {
                        log::debug!("server: waking the accept loop through {to}: {e}");
                        last = Some((*to, e));
                    }
                }
            }
        }
        if let Some((to, e)) = last {
            log::error!(
                "server: cannot connect to {to} to stop its accept loop: {e}; \
                 it stops at its next connection"
            );
        }
    }
}

/// Where to connect to reach a listener on `addr`: a listener on all interfaces is
/// reached on the loopback (for `::`, IPv6's, then IPv4's: a dual-stack listener takes
/// both, and IPv6 may be disabled); any other address as it is (an IPv6 scope kept).
fn wake_addrs(addr: SocketAddr) -> Vec<SocketAddr> {
    let port = addr.port();
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            vec![SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))]
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => vec![
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
        ],
        _ => vec![addr],
    }
}

/// Serves until `server.unblock()` is called.
pub fn serve(server: &Server, state: &State) {
    let (tx, rx) = bounded::<TcpStream>(QUEUED);
    std::thread::scope(|s| {
        for i in 0..WORKERS {
            let rx = rx.clone();
            let name = format!("http-{i}");
            let spawned = threads::spawn_scoped(s, name, threads::SERVICE_STACK, move || {
                for conn in rx {
                    if let Err(e) = answer(conn, state) {
                        log::debug!("server: {e}");
                    }
                }
            });
            if let Err(e) = spawned {
                log::error!("server: cannot spawn a worker: {e}");
            }
        }
        loop {
            let accepted = server.listener.accept();
            // A connection after the stop is `unblock`'s wake-up (or too late): closed.
            if server.stop.load(Ordering::SeqCst) {
                break;
            }
            match accepted {
                Ok((conn, _)) => match tx.try_send(conn) {
                    Ok(()) => {}
                    // Dropping the connection closes it: too many waiting already.
                    Err(TrySendError::Full(_)) => {
                        log::debug!("server: busy, connection closed")
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: do not spin.
                    log::warn!("server: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        drop(tx);
    });
}

/// Reads one request head within the deadline, answers it, closes the connection.
fn answer(mut conn: TcpStream, state: &State) -> io::Result<()> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = loop {
        if let Some(end) = head_end(&buf) {
            break parse_head(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            break Err(Refused {
                status: 431,
                reason: "request head too large",
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request head in time",
            ));
        }
        conn.set_read_timeout(Some(left))?;
        match conn.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let (status, content_type, body, head_only) = match head {
        Ok(h) => {
            let (status, content_type, body) = route(&h.method, &h.path, state);
            (status, content_type, body, h.method == "HEAD")
        }
        Err(r) => (r.status, "text/plain", format!("{r}\n").into_bytes(), false),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&body);
    }
    write_within(&mut conn, &bytes, Instant::now() + WRITE_DEADLINE)?;
    let _ = conn.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Writes all of `bytes` before `deadline`, however slowly the client reads.
fn write_within(conn: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "answer not taken in time",
            ));
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn route(method: &str, path: &str, state: &State) -> (u16, &'static str, Vec<u8>) {
    if !matches!(method, "GET" | "HEAD") {
        return (405, "text/plain", b"method not allowed\n".to_vec());
    }
    match path {
        "/metrics" => (200, "text/plain; version=0.0.4", state.metrics.render()),
        "/health" => {
            let (ok, body) = state.health.report(state.streams.len());
            (
                if ok { 200 } else { 503 },
                "application/json",
                body.into_bytes(),
            )
        }
        "/streams" => (
            200,
            "application/json",
            state.streams.to_json().into_bytes(),
        ),
        _ => (
            404,
            "text/plain",
            b"not found: try /metrics, /health or /streams\n".to_vec(),
        ),
    }
}

#[cfg(test)]
#[path = "wake_tests.rs"]
mod wake_tests;
