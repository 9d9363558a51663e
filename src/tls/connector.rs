//! The ureq connector of the network sinks: TCP (directly, or through a CONNECT proxy from
//! the usual environment variables), then, for `https://` URLs, TLS with the sink's own
//! [`ClientTls`] instead of ureq's built-in one, which can neither add a CA to the bundled
//! roots nor verify a name other than the URL's host. Handshake failures, and a client
//! certificate refused after the handshake (TLS 1.3 refuses it on the first read), reach
//! the sink told by [`describe_io`](super::describe_io).

use std::io::{ErrorKind, Read, Write};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ProtocolVersion, StreamOwned};
use ureq::unversioned::transport::time::{Duration as UDuration, Instant as UInstant};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    TcpConnector, Transport, TransportAdapter,
};
use ureq::Error;

use super::{describe_io, ClientTls};

/// Wraps connections to `https://` URLs in the sink's TLS; others pass through.
#[derive(Clone)]
pub struct TlsConnector {
    tls: ClientTls,
    /// The sink URL's host: only there do `server_name` and the client certificate apply
    /// (an HTTPS proxy on the way is verified by its own name, and gets no certificate).
    sink_host: String,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("sink_host", &self.sink_host)
            .field("insecure", &self.tls.is_insecure())
            .finish()
    }
}

impl TlsConnector {
    /// The whole chain a sink's agent uses: proxy, TCP, this TLS. `url` is the sink's.
    pub fn chain(tls: ClientTls, url: &str) -> impl Connector {
        let sink_host = url
            .parse::<ureq::http::Uri>()
            .ok()
            .and_then(|u| u.host().map(|h| bare(h).to_ascii_lowercase()))
            .unwrap_or_default();
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(TlsConnector { tls, sink_host })
    }
}

/// A host without the brackets of an IPv6 address.
fn bare(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// `timeout` less the time already spent since `details.now` (TCP connect, proxy).
fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (UDuration::Exact(after), UInstant::Exact(start), UInstant::Exact(now)) =
        (timeout.after, details.now, (details.current_time)())
    {
        timeout.after =
            UDuration::Exact(after.saturating_sub(now.saturating_duration_since(start)));
    }
    timeout
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        let Some(transport) = chained else {
            return Err(Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = bare(
            details
                .uri
                .authority()
                .map(|a| a.host())
                .unwrap_or_default(),
        );
        let for_sink = host.eq_ignore_ascii_case(&self.sink_host);
        let invalid = |e: String| Error::Io(std::io::Error::new(ErrorKind::InvalidInput, e));
        let (config, name) = if for_sink {
            (self.tls.config(), self.tls.name_for(host).map_err(invalid)?)
        } else {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| invalid(format!("{host:?} is not a valid TLS server name")))?;
            (self.tls.other_hosts(), name)
        };
        let mut conn = ClientConnection::new(config, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(remaining(details));
        let client_cert = for_sink && self.tls.has_client_cert();
        self.tls.take_asked_for_client_cert();
        conn.complete_io(&mut sock)
            .map_err(|e| describe_io(e, client_cert))?;
        // A TLS 1.3 server that requires a certificate we lack refuses only after this.
        let refusal_ahead = for_sink
            && !client_cert
            && self.tls.take_asked_for_client_cert()
            && conn.protocol_version() == Some(ProtocolVersion::TLSv1_3);
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
            client_cert,
            refusal_ahead,
        })))
    }
}

/// One TLS connection of a sink.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    client_cert: bool,
    /// The server asked for a client certificate we do not have (TLS 1.3), and has sent
    /// nothing since: a close now is its refusal.
    refusal_ahead: bool,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl TlsTransport {
    /// A failed read or write, with its TLS cause when there is one.
    fn told(&mut self, e: std::io::Error) -> std::io::Error {
        let client_cert = self.client_cert;
        // Only a peer that closed can have left an alert behind; reading after a timeout
        // would wait out another one.
        let closed = matches!(
            e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
        );
        if closed {
            if let Some(refusal) = self.pending_alert() {
                return describe_io(refusal, client_cert);
            }
        }
        if closed && self.refusal_ahead {
            let text = format!(
                "TLS: client certificate required: the server asked for one, none is \
                 configured, and it closed the connection ({e}); set tls.cert_file and \
                 tls.key_file"
            );
            return std::io::Error::new(e.kind(), text);
        }
        describe_io(e, client_cert)
    }

    /// Why the server closed, when a write failed because it did: TLS 1.3 servers refuse
    /// a client certificate (or its absence) after the client's side of the handshake is
    /// done, with an alert that is still unread when the request's write breaks the pipe.
    fn pending_alert(&mut self) -> Option<std::io::Error> {
        let StreamOwned { conn, sock } = &mut self.stream;
        for _ in 0..16 {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        return Some(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
                    }
                }
            }
        }
        None
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        match self.stream.write_all(output) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.told(e).into()),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = match self.stream.read(input) {
            Ok(n) => n,
            Err(e) => return Err(self.told(e).into()),
        };
        if amount > 0 {
            self.refusal_ahead = false;
        }
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
