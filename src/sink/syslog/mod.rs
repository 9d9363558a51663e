//! The syslog sink (README, Sinks): records as RFC 5424 or 3164 messages over one
//! long-lived UDP socket, TCP connection or TLS session per sink, opened again after an
//! error or after `idle_timeout` unused. A TCP/TLS batch is acknowledged once the kernel
//! took all of it; a write that fails drops the connection and the whole batch is sent
//! again on a new one (what the server had already read of it arrives twice). Before each
//! batch a connection the server closed meanwhile is noticed and replaced, so a batch is
//! not written into a dead socket. UDP: each datagram is counted as sent, nothing more.
//!
//! # Layout
//! - `format.rs`: the message formats and framings, pure.

mod format;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::{ClientConnection, StreamOwned};

use super::{Batch, Sink, SinkError};
use crate::config::{
    facility_code, parse_template, Framing, SyslogAddress, SyslogSinkConfig, Transport,
};
use crate::metrics::Metrics;
use crate::tls::{describe_io, ClientTls};
use format::{frame, Formatter, UDP_MAX};

pub struct SyslogSink {
    name: String,
    address: SyslogAddress,
    formatter: Formatter,
    framing: Framing,
    timeout: Duration,
    idle_timeout: Duration,
    tls: Option<ClientTls>,
    conn: Option<Conn>,
    last_used: Instant,
    /// A clone of the current TCP socket, for the interrupter.
    socket: Arc<Mutex<Option<TcpStream>>>,
    metrics: Arc<Metrics>,
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl SyslogSink {
    pub fn new(
        name: String,
        cfg: &SyslogSinkConfig,
        metrics: Arc<Metrics>,
    ) -> Result<SyslogSink, String> {
        let address = SyslogAddress::parse(&cfg.address).map_err(|e| format!("address: {e}"))?;
        let facility = facility_code(&cfg.facility)
            .ok_or_else(|| format!("facility: unknown facility {:?}", cfg.facility))?;
        let template = |key: &str, t: &str| parse_template(t).map_err(|e| format!("{key}: {e}"));
        let tls = match address.transport {
            Transport::Tls => Some(ClientTls::new(&cfg.tls).map_err(|e| format!("tls.{e}"))?),
            Transport::Udp | Transport::Tcp => None,
        };
        Ok(SyslogSink {
            name,
            formatter: Formatter {
                format: cfg.format,
                facility,
                app_name: template("app_name", &cfg.app_name)?,
                hostname: template("hostname", &cfg.hostname)?,
            },
            address,
            framing: cfg.framing,
            timeout: cfg.timeout.get(),
            idle_timeout: cfg.idle_timeout.get(),
            tls,
            conn: None,
            last_used: Instant::now(),
            socket: Arc::new(Mutex::new(None)),
            metrics,
        })
    }

    fn target(&self) -> String {
        let a = &self.address;
        format!("syslog {}:{}", a.host, a.port)
    }

    fn transient(&self, what: &str, e: impl std::fmt::Display) -> SinkError {
        SinkError::transient(format!("{}: {what}: {e}", self.target()))
    }

    /// The connection to write on: the current one unless idle too long or closed by
    /// the server, else a new one.
    fn connection(&mut self, timeout: Duration) -> Result<&mut Conn, SinkError> {
        let stale = self.last_used.elapsed() >= self.idle_timeout;
        let usable = match &mut self.conn {
            Some(conn) => !stale && still_open(conn),
            None => false,
        };
        if !usable {
            self.conn = None;
            *self.socket.lock() = None;
            let conn = self.connect(timeout)?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| SinkError::transient("syslog: no connection"))
    }

    fn connect(&mut self, timeout: Duration) -> Result<Conn, SinkError> {
        let a = &self.address;
        let addrs: Vec<_> = (a.host.as_str(), a.port)
            .to_socket_addrs()
            .map_err(|e| self.transient("cannot resolve", e))?
            .collect();
        if self.address.transport == Transport::Udp {
            let addr = addrs
                .first()
                .ok_or_else(|| self.transient("no address", "none"))?;
            let local = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local).map_err(|e| self.transient("bind", e))?;
            socket
                .connect(addr)
                .map_err(|e| self.transient("connect", e))?;
            return Ok(Conn::Udp(socket));
        }
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => return Err(self.transient("connect", e)),
            (None, None) => return Err(self.transient("no address", "none")),
        };
        let _ = tcp.set_nodelay(true);
        tcp.set_write_timeout(Some(timeout))
            .and_then(|_| tcp.set_read_timeout(Some(timeout)))
            .map_err(|e| self.transient("socket", e))?;
        *self.socket.lock() = tcp.try_clone().ok();
        let Some(tls) = &self.tls else {
            return Ok(Conn::Tcp(tcp));
        };
        let name = tls
            .name_for(&self.address.host)
            .map_err(|e| self.transient("TLS", e))?;
        let conn =
            ClientConnection::new(tls.config(), name).map_err(|e| self.transient("TLS", e))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                let e = describe_io(e, tls.has_client_cert());
                return Err(self.transient("TLS handshake", e));
            }
        }
        Ok(Conn::Tls(Box::new(stream)))
    }

    /// The messages of `batch`: framed into one buffer for a stream, one per datagram
    /// for UDP. Counts the messages cut to their format's size limit.
    fn encode(&self, batch: &Batch) -> (Vec<Vec<u8>>, u64) {
        let udp = self.address.transport == Transport::Udp;
        let mut cut = 0;
        let mut out = Vec::new();
        let mut stream = Vec::new();
        let mut message = Vec::with_capacity(256);
        for r in &batch.records {
            message.clear();
            let limit = if udp { UDP_MAX } else { usize::MAX };
            if self.formatter.message(r, limit, &mut message) {
                cut += 1;
            }
            match udp {
                true => out.push(message.clone()),
                false => frame(self.framing, &message, &mut stream),
            }
        }
        if !udp {
            out.push(stream);
        }
        (out, cut)
    }
}

/// Whether the server left the connection open: a read that would block means open; an
/// end of stream, a reset, or (TLS) a close_notify means closed. Syslog servers send
/// nothing else (a TLS 1.3 session ticket is taken in here).
fn still_open(conn: &mut Conn) -> bool {
    let Some(tcp) = conn.tcp() else {
        return true;
    };
    if tcp.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let mut open = match tcp.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::WouldBlock,
    };
    if let (true, Conn::Tls(s)) = (open, &mut *conn) {
        open = tls_still_open(s);
    }
    let blocking = conn.tcp().is_some_and(|t| t.set_nonblocking(false).is_ok());
    blocking && open
}

impl Conn {
    /// The TCP socket under a stream connection.
    fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Conn::Udp(_) => None,
            Conn::Tcp(tcp) => Some(tcp),
            Conn::Tls(s) => Some(&mut s.sock),
        }
    }
}

/// Takes in what the server sent on a TLS session (the socket is non-blocking).
fn tls_still_open(s: &mut StreamOwned<ClientConnection, TcpStream>) -> bool {
    loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => return false,
            Ok(_) => match s.conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() => return false,
                Ok(_) => {
                    let mut sink = [0u8; 512];
                    // Application data from a syslog server is unexpected; discard it.
                    while matches!(s.conn.reader().read(&mut sink), Ok(n) if n > 0) {}
                }
                Err(_) => return false,
            },
            Err(e) => return e.kind() == ErrorKind::WouldBlock,
        }
    }
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn interrupter(&self) -> Option<super::Interrupter> {
        let socket = self.socket.clone();
        Some(Box::new(move || {
            if let Some(s) = socket.lock().as_ref() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }))
    }

    fn write_batch(&mut self, batch: &Batch, deadline: Option<Instant>) -> Result<(), SinkError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let timeout = super::timeout_until(self.timeout, deadline);
        let (messages, cut) = self.encode(batch);
        if cut > 0 {
            self.metrics
                .sink_truncated_records
                .with_label_values(&[&self.name])
                .inc_by(cut);
        }
        let target = self.target();
        let conn = self.connection(timeout)?;
        let written = match conn {
            // A datagram counts as sent: a refusal (ICMP port unreachable from an earlier
            // one) is no reason to hold the pipeline, as UDP promises nothing anyway.
            Conn::Udp(socket) => messages.iter().try_for_each(|m| match socket.send(m) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
                other => other.map(drop),
            }),
            Conn::Tcp(tcp) => {
                let _ = tcp.set_write_timeout(Some(timeout));
                messages
                    .iter()
                    .try_for_each(|m| tcp.write_all(m))
                    .and_then(|_| tcp.flush())
            }
            Conn::Tls(s) => {
                let _ = s.sock.set_write_timeout(Some(timeout));
                messages
                    .iter()
                    .try_for_each(|m| s.write_all(m))
                    .and_then(|_| s.flush())
            }
        };
        match written {
            Ok(()) => {
                self.last_used = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.conn = None;
                *self.socket.lock() = None;
                Err(SinkError::transient(format!("{target}: write: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::sample_records;

    fn sink(address: String) -> SyslogSink {
        let cfg = SyslogSinkConfig {
            address,
            ..SyslogSinkConfig::default()
        };
        let metrics = Arc::new(Metrics::new().unwrap());
        SyslogSink::new("syslog-0".into(), &cfg, metrics).unwrap()
    }

    #[test]
    fn udp_to_a_closed_port_counts_as_sent() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = sink(format!("udp://127.0.0.1:{port}"));
        let batch = Batch::new(sample_records(3, "m"));
        for _ in 0..3 {
            s.write_batch(&batch, None).unwrap();
        }
    }

    #[test]
    fn an_idle_connection_is_replaced() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = SyslogSinkConfig {
            address: format!("tcp://{}", listener.local_addr().unwrap()),
            idle_timeout: crate::config::HumanDuration(Duration::from_millis(100)),
            ..SyslogSinkConfig::default()
        };
        let mut s =
            SyslogSink::new("syslog-0".into(), &cfg, Arc::new(Metrics::new().unwrap())).unwrap();
        let batch = Batch::new(sample_records(1, "m"));
        s.write_batch(&batch, None).unwrap();
        let (_first, _) = listener.accept().unwrap();
        s.write_batch(&batch, None).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        s.write_batch(&batch, None).unwrap();
        listener.set_nonblocking(true).unwrap();
        assert!(
            listener.accept().is_ok(),
            "a second connection after idle_timeout"
        );
    }

    #[test]
    fn a_closed_tcp_server_is_noticed_before_the_next_batch() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = sink(format!("tcp://{}", listener.local_addr().unwrap()));
        let batch = Batch::new(sample_records(2, "m"));
        s.write_batch(&batch, None).unwrap();
        let (mut first, _) = listener.accept().unwrap();
        let mut got = vec![0u8; 64];
        let n = first.read(&mut got).unwrap();
        assert!(n > 0 && got.starts_with(b"1"), "octet counting");
        drop(first);
        std::thread::sleep(Duration::from_millis(50));
        s.write_batch(&batch, None).unwrap();
        let (mut second, _) = listener.accept().unwrap();
        let _ = second.set_read_timeout(Some(Duration::from_secs(5)));
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while all.len() < 2 * 40 {
            match second.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&all).contains("m 1") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.contains("m 0") && text.contains("m 1"),
            "the batch on a new connection: {text}"
        );
    }
}
