//! TLS for the network sinks: a sink's `tls` table (README, Sinks) turned into one rustls
//! client configuration, built once at start. The bundled Mozilla roots are always
//! trusted; `ca_file` adds a private CA; `cert_file` + `key_file` present a client
//! certificate; `server_name` replaces the URL's host as the name verified and sent as
//! SNI; `insecure_skip_verify` accepts any server certificate.
//!
//! Every file is read and checked here, by `--check-config` and at start alike: a
//! missing file, a PEM without a certificate or key, a key that does not belong to its
//! certificate are a [`TlsError`] naming the key, so the configuration is refused before
//! anything runs.
//!
//! # Layout
//! - `connector.rs`: the ureq connector that wraps a sink's connections in this TLS.
//! - `describe.rs`: handshake failures told in an operator's words (unknown CA, name
//!   mismatch, expired certificate, client certificate required).
//! - `insecure.rs`: the verifier of `insecure_skip_verify`.

mod connector;
mod describe;
mod insecure;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub use connector::TlsConnector;
pub use describe::describe_io;

use crate::config::TlsConfig;

/// A sink's TLS, ready to connect with. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    other_hosts: Arc<ClientConfig>,
    /// Verified and sent as SNI instead of the URL's host.
    server_name: Option<ServerName<'static>>,
    insecure: bool,
    client_cert: bool,
    /// A server asked for a client certificate that is not configured.
    asked_for_client_cert: Arc<AtomicBool>,
}

/// What is wrong with a `tls` table: the key (`ca_file`, ...) and why.
#[derive(Debug)]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

impl TlsError {
    fn new(key: &'static str, message: impl Into<String>) -> TlsError {
        TlsError {
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for TlsError {}

impl ClientTls {
    /// Reads and checks the files of `cfg` and builds the client configuration.
    pub fn new(cfg: &TlsConfig) -> Result<ClientTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = cfg.ca_file() {
            add_cas(&mut roots, path)?;
        }
        // Trust as configured; the client certificate is added for the sink's host only.
        let trusting = || -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, TlsError> {
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::new("tls", format!("no usable TLS version: {e}")))?;
            Ok(if cfg.insecure_skip_verify {
                let any = insecure::AcceptAny::new(&provider);
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(any))
            } else {
                builder.with_root_certificates(roots.clone())
            })
        };
        let asked = Arc::new(AtomicBool::new(false));
        let config = match cfg.client_files() {
            (None, None) => trusting()?.with_client_cert_resolver(Arc::new(NoClientCert {
                asked: asked.clone(),
            })),
            (Some(_), None) => {
                return Err(TlsError::new("key_file", "required when cert_file is set"))
            }
            (None, Some(_)) => {
                return Err(TlsError::new("cert_file", "required when key_file is set"))
            }
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "cert_file")?;
                let key_der = private_key(key)?;
                check_key(&chain, &key_der, &provider, key)?;
                trusting()?
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| TlsError::new("key_file", format!("{}: {e}", key.display())))?
            }
        };
        let server_name = match cfg.server_name() {
            None => None,
            Some(name) => Some(ServerName::try_from(name.to_owned()).map_err(|_| {
                TlsError::new(
                    "server_name",
                    format!("{name:?} is neither a DNS name nor an IP address"),
                )
            })?),
        };
        Ok(ClientTls {
            config: Arc::new(config),
            other_hosts: Arc::new(trusting()?.with_no_client_auth()),
            server_name,
            insecure: cfg.insecure_skip_verify,
            client_cert: cfg.client_files().0.is_some(),
            asked_for_client_cert: asked,
        })
    }

    /// Verifies nothing (`insecure_skip_verify`).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The name to verify for a connection to `host`: `server_name`, else `host`.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => ServerName::try_from(host.to_owned())
                .map_err(|_| format!("{host:?} is not a valid TLS server name")),
        }
    }

    /// The configuration for the sink's own host (with the client certificate).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The configuration for any other host on the way (an HTTPS proxy): the same trust,
    /// verified against that host's own name, and no client certificate.
    pub fn other_hosts(&self) -> Arc<ClientConfig> {
        self.other_hosts.clone()
    }

    /// Whether a client certificate is configured (it changes how a refusal is told).
    pub fn has_client_cert(&self) -> bool {
        self.client_cert
    }

    /// Whether a server asked for a client certificate this sink does not have since the
    /// last call (the sink makes one connection at a time: the answer is that handshake's).
    pub fn take_asked_for_client_cert(&self) -> bool {
        self.asked_for_client_cert.swap(false, Ordering::Relaxed)
    }
}

/// No client certificate, but remembers a server asking for one: a TLS 1.3 server that
/// requires one refuses after the client's side of the handshake, often by closing
/// the connection before its alert can be read, and this is how the sink can still tell
/// the cause.
#[derive(Debug)]
struct NoClientCert {
    asked: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| TlsError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// Every certificate of a PEM file; none is an error.
fn certificates(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, key)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs =
        certs.map_err(|e| TlsError::new(key, format!("{}: not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            key,
            format!(
                "{}: no PEM certificate (BEGIN CERTIFICATE) in it",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// Every certificate of `ca_file` as a trust anchor; one that cannot be would leave the
/// operator's CA out and fail later as "unknown CA", so it is refused here by position.
fn add_cas(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    for (i, cert) in certificates(path, "ca_file")?.into_iter().enumerate() {
        if let Err(e) = roots.add(cert) {
            let n = i + 1;
            return Err(TlsError::new(
                "ca_file",
                format!(
                    "{}: certificate {n} of the file is not a usable CA: {e}",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC); encrypted keys
/// are refused with what to do about them.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "key_file")?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::new(
            "key_file",
            format!(
                "{}: the key is encrypted, which is not supported: decrypt it into a file \
                 only the capturer can read (openssl pkey -in KEY -out PLAIN_KEY)",
                path.display()
            ),
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let why = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (PKCS#8, RSA or EC) in it".to_owned()
            }
            e => format!("not a valid PEM private key: {e}"),
        };
        TlsError::new("key_file", format!("{}: {why}", path.display()))
    })
}

/// The key must be usable and belong to the first certificate of the chain.
fn check_key(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    key_path: &Path,
) -> Result<(), TlsError> {
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            TlsError::new(
                "key_file",
                format!("{}: unusable private key: {e}", key_path.display()),
            )
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::new(
                "key_file",
                format!(
                    "{}: the key does not belong to the certificate in cert_file",
                    key_path.display()
                ),
            ))
        }
        // The provider cannot tell (no public key to compare): the handshake will.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(e) => {
            let why = match e.to_string() {
                v1 if v1.contains("UnsupportedCertVersion") => {
                    "it is an X.509 v1 certificate; TLS needs v3 (issue it with extensions)"
                        .to_owned()
                }
                other => other,
            };
            Err(TlsError::new(
                "cert_file",
                format!("the certificate cannot be used: {why}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
