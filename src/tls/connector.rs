//! The ureq connector of the network sinks: TCP (directly, or through a CONNECT proxy from
//! the usual environment variables), then, for `https://` URLs, TLS with the sink's own
//! [`ClientTls`] instead of ureq's built-in one, which can neither add a CA to the bundled
//! roots nor verify a name other than the URL's host. Handshake failures, and a client
//! certificate refused after the handshake (TLS 1.3 refuses it on the first read), reach
//! the sink told by [`describe_io`](super::describe_io).

use std::io::{ErrorKind, Read, Write};

use rustls::{ClientConnection, StreamOwned};
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
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("insecure", &self.tls.is_insecure())
            .finish()
    }
}

impl TlsConnector {
    /// The whole chain a sink's agent uses: proxy, TCP, this TLS.
    pub fn chain(tls: ClientTls) -> impl Connector {
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(TlsConnector { tls })
    }
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
        let host = details
            .uri
            .authority()
            .map(|a| a.host())
            .unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = self
            .tls
            .name_for(host)
            .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let mut conn = ClientConnection::new(self.tls.config(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        let client_cert = self.tls.has_client_cert();
        conn.complete_io(&mut sock)
            .map_err(|e| describe_io(e, client_cert))?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
            tls: self.tls.clone(),
        })))
    }
}

/// One TLS connection of a sink.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    tls: ClientTls,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl TlsTransport {
    /// A failed read or write, with its TLS cause when there is one.
    fn told(&mut self, e: std::io::Error) -> std::io::Error {
        let client_cert = self.tls.has_client_cert();
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
        if closed && !client_cert && self.tls.asked_for_client_cert() {
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
