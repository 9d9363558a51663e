//! What the TLS tests build on: a private PKI generated per test (rcgen: a CA, server and
//! client certificates, expired ones on demand; RSA and SEC1 keys through Debian's
//! `openssl`), and a TLS-terminating proxy on 127.0.0.1 (rustls) in front of a fake
//! receiver of tests/receivers.rs, optionally requiring a client certificate signed by
//! the CA. The proxy keeps every handshake it refused, with rustls's reason. Drop stops
//! it and joins every thread it started.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A CA and the certificates it signs, as PEM files in a temp dir.
pub struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

/// A server's certificate: for which names, and whether it has expired.
pub struct ServerCert<'a> {
    pub names: &'a [&'a str],
    pub expired: bool,
}

impl Pki {
    /// A new CA ("<tag> test CA"); its certificate is `ca.pem`, its key `ca.key`.
    pub fn new(tag: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{tag} test CA"));
        let cert = params.self_signed(&key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).expect("write ca.key");
        let ca_der = cert.der().clone();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
            ca_der,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A server configuration with a certificate this CA signed; with `client_auth`, a
    /// client certificate signed by `client_ca` is required.
    pub fn server(&self, cert: ServerCert, client_auth: Option<&Pki>) -> Arc<ServerConfig> {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(cert.names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        if cert.expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let signed = params.signed_by(&key, &self.issuer).expect("server cert");
        let chain = vec![signed.der().clone()];
        let key_der =
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("server key der");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_auth {
            None => builder.with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(client_ca.ca_der.clone()).expect("client CA");
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(
            builder
                .with_single_cert(chain, key_der)
                .expect("server config"),
        )
    }

    /// A server certificate for `names` and its key as PEM files (for servers that read
    /// files, e.g. rsyslog): (`<file>.pem`, `<file>.key`).
    pub fn server_files(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("server params");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        let (cert_path, key_path) = (
            self.path(&format!("{file}.pem")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write server cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write server key");
        (cert_path, key_path)
    }

    /// A client certificate and its PKCS#8 EC key: (`<name>.pem`, `<name>.key`).
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        let (cert_path, key_path) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write client cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write client key");
        (cert_path, key_path)
    }

    /// A client certificate with a 2048-bit RSA key in PKCS#1 form ("BEGIN RSA PRIVATE
    /// KEY"), made by `openssl`.
    pub fn client_rsa(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
        );
        let pkcs8 = self.path(&format!("{name}.p8"));
        let subject = format!("/CN={name}");
        run_openssl(&[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            s(&pkcs8),
            "-out",
            s(&csr),
        ]);
        let ca = self.ca_file();
        let ca_key = self.path("ca.key");
        // Extensions make it an X.509 v3 certificate (webpki refuses v1).
        let ext = self.path(&format!("{name}.ext"));
        let v3 = "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n";
        std::fs::write(&ext, v3).expect("write the extensions");
        let (csr, ca, ca_key, ext, out) = (s(&csr), s(&ca), s(&ca_key), s(&ext), s(&cert));
        run_openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-extfile",
            ext,
            "-out",
            out,
        ]);
        run_openssl(&["rsa", "-in", s(&pkcs8), "-traditional", "-out", s(&key)]);
        assert_pem(&key, "BEGIN RSA PRIVATE KEY");
        (cert, key)
    }

    /// The key of an EC client certificate rewritten in SEC1 form ("BEGIN EC PRIVATE
    /// KEY") by `openssl`.
    pub fn sec1_key(&self, pkcs8_key: &Path) -> PathBuf {
        let out = pkcs8_key.with_extension("sec1");
        run_openssl(&["ec", "-in", s(pkcs8_key), "-out", s(&out)]);
        assert_pem(&out, "BEGIN EC PRIVATE KEY");
        out
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn run_openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package openssl; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_pem(path: &Path, header: &str) {
    let text = std::fs::read_to_string(path).expect("read a PEM");
    assert!(text.contains(header), "{} lacks {header}", path.display());
}

/// A TLS-terminating proxy on 127.0.0.1 in front of `backend_port`.
pub struct TlsProxy {
    port: u16,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TlsProxy {
    pub fn start(backend_port: u16, config: Arc<ServerConfig>) -> TlsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS proxy");
        TlsProxy::serve(listener, backend_port, config)
    }

    /// Serves on the port of an earlier proxy (dropped first), with another certificate.
    pub fn restart_on(port: u16, backend_port: u16, config: Arc<ServerConfig>) -> TlsProxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind the TLS proxy");
        TlsProxy::serve(listener, backend_port, config)
    }

    fn serve(listener: TcpListener, backend_port: u16, config: Arc<ServerConfig>) -> TlsProxy {
        let port = listener.local_addr().expect("proxy address").port();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (r, st, conns) = (refused.clone(), stop.clone(), connections.clone());
        let accept = thread::Builder::new()
            .name(format!("tlsproxy-{port}"))
            .spawn(move || {
                for tcp in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (config, r, st) = (config.clone(), r.clone(), st.clone());
                    let handle = thread::Builder::new()
                        .name(format!("tlsproxy-c-{port}"))
                        .spawn(move || relay(tcp, backend_port, config, &r, &st))
                        .expect("spawn a proxy connection");
                    conns.lock().unwrap().push(handle);
                }
            })
            .expect("spawn the proxy");
        TlsProxy {
            port,
            refused,
            stop,
            accept: Some(accept),
            connections,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "https://127.0.0.1:<port>".
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Why each refused handshake failed (rustls's words, server side).
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.join();
        }
    }
}

const POLL: Duration = Duration::from_millis(10);

/// One connection: the handshake (refusals recorded), then bytes both ways until either
/// side closes or the proxy stops.
fn relay(
    tcp: TcpStream,
    backend_port: u16,
    config: Arc<ServerConfig>,
    refused: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let Ok(mut conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tcp = tcp;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let why = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => tls.to_string(),
                None => e.to_string(),
            };
            refused.lock().unwrap().push(why);
            return;
        }
    }
    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)) else {
        return;
    };
    let _ = tcp.set_read_timeout(Some(POLL));
    let _ = backend.set_read_timeout(Some(POLL));
    let mut tls = StreamOwned::new(conn, tcp);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if backend.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if waiting(&e) => {}
            Err(_) => return,
        }
        match backend.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if waiting(&e) => {}
            Err(_) => return,
        }
    }
}

fn waiting(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
