//! The Unix-socket transport under ureq: a `Connector` that dials the Docker socket and a
//! `Transport` that owns the stream. Every connect is counted and every live transport
//! holds a [`ConnGuard`], so the connection metrics are exact although ureq's pool keeps
//! no statistics of its own. `is_open` really probes the socket, so a connection left
//! stale by a daemon restart is discarded instead of reused.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};
use ureq::{Error, Timeout};

use crate::metrics::Metrics;

/// Live connection counts shared by the connector, its transports and the client.
#[derive(Debug, Default)]
pub struct ConnCounts {
    /// Transports alive (pooled or carrying a request).
    pub live: AtomicI64,
    /// Requests or streams currently holding a connection.
    pub active: AtomicI64,
}

/// Publishes the counts into the gauges.
pub fn publish(counts: &ConnCounts, metrics: &Metrics) {
    let live = counts.live.load(Ordering::Relaxed);
    let active = counts.active.load(Ordering::Relaxed);
    metrics
        .docker_active_connections
        .set(active.min(live).max(0));
    metrics.docker_idle_connections.set((live - active).max(0));
}

std::thread_local! {
    /// Whether the request this thread is sending is a follow stream (for accounting).
    static OPENING_STREAM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `send` with connections it opens counted as follow-stream connections.
pub fn opening_stream<T>(long_lived: bool, send: impl FnOnce() -> T) -> T {
    OPENING_STREAM.with(|c| c.set(long_lived));
    let out = send();
    OPENING_STREAM.with(|c| c.set(false));
    out
}

/// +1 live on creation, -1 on drop: the registration guard of one socket.
struct ConnGuard {
    counts: Arc<ConnCounts>,
    metrics: Arc<Metrics>,
}

impl ConnGuard {
    fn new(counts: Arc<ConnCounts>, metrics: Arc<Metrics>) -> ConnGuard {
        counts.live.fetch_add(1, Ordering::Relaxed);
        metrics.docker_connections_opened.inc();
        if OPENING_STREAM.with(|c| c.get()) {
            metrics.docker_stream_connections_opened.inc();
        }
        publish(&counts, &metrics);
        ConnGuard { counts, metrics }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.counts.live.fetch_sub(1, Ordering::Relaxed);
        publish(&self.counts, &self.metrics);
    }
}

/// A host that is never dialed: a request to it only makes ureq's pool drop connections
/// idle past their age (ureq purges on connect and has no other way to ask for it).
pub const PURGE_HOST: &str = "purge.invalid";

/// Dials `path` for every new connection ureq asks for.
pub struct UnixConnector {
    path: PathBuf,
    counts: Arc<ConnCounts>,
    metrics: Arc<Metrics>,
}

impl UnixConnector {
    pub fn new(path: PathBuf, counts: Arc<ConnCounts>, metrics: Arc<Metrics>) -> UnixConnector {
        UnixConnector {
            path,
            counts,
            metrics,
        }
    }
}

impl fmt::Debug for UnixConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixConnector")
            .field("path", &self.path)
            .finish()
    }
}

impl Connector<()> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, Error> {
        if details.uri.host() == Some(PURGE_HOST) {
            return Err(Error::ConnectionFailed);
        }
        let stream = UnixStream::connect(&self.path)?;
        let config = details.config;
        let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        let sock = Arc::new(Sock(stream));
        let weak: Weak<dyn ShutdownHandle> = Arc::downgrade(&sock) as Weak<dyn ShutdownHandle>;
        let transport = UnixTransport {
            sock,
            buffers,
            read_timeout: None,
            write_timeout: None,
            _guard: ConnGuard::new(self.counts.clone(), self.metrics.clone()),
        };
        (details.register_shutdown)(weak)?;
        log::debug!("docker: connected to {}", self.path.display());
        Ok(Some(transport))
    }
}

/// The socket, shareable with the agent's shutdown registry.
struct Sock(UnixStream);

impl ShutdownHandle for Sock {
    fn shutdown(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// One connection to the Docker socket. Closed when dropped.
pub struct UnixTransport {
    sock: Arc<Sock>,
    buffers: LazyBuffers,
    read_timeout: Option<std::time::Duration>,
    write_timeout: Option<std::time::Duration>,
    _guard: ConnGuard,
}

impl fmt::Debug for UnixTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixTransport").finish()
    }
}

fn timeout_of(t: &NextTimeout) -> Option<std::time::Duration> {
    t.not_zero().map(|d| *d)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        let want = timeout_of(&timeout);
        if want != self.write_timeout {
            self.sock.0.set_write_timeout(want)?;
            self.write_timeout = want;
        }
        let output = &self.buffers.output()[..amount];
        match (&self.sock.0).write_all(output) {
            Ok(()) => Ok(()),
            Err(e) if is_timeout(&e) => Err(Error::Timeout(timeout.reason)),
            Err(e) => Err(e.into()),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        let want = timeout_of(&timeout);
        if want != self.read_timeout {
            self.sock.0.set_read_timeout(want)?;
            self.read_timeout = want;
        }
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&self.sock.0).read(input) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(timeout.reason)),
                Err(e) => return Err(e.into()),
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        probe(&self.sock.0)
    }
}

/// A pooled connection is healthy when a non-blocking 1-byte read would block: EOF or
/// stray bytes mean the daemon closed it or is out of step with us.
fn probe(stream: &UnixStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut buf = [0u8; 1];
    let healthy =
        matches!((&*stream).read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    healthy && stream.set_nonblocking(false).is_ok()
}

/// Every URI resolves to one placeholder address: the connector ignores it.
#[derive(Debug, Default)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        Ok(addrs)
    }
}

/// Whether a ureq error is the per-read timeout of a follow stream (reading may go on).
pub fn is_read_timeout(e: &Error) -> bool {
    matches!(e, Error::Timeout(Timeout::PerRead))
}
