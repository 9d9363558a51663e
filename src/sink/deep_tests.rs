//! The deepest path of the dispatcher thread, run on a thread of half its stack
//! ([`DISPATCHER_STACK`]): a Loki sink over TLS (a fresh handshake per push to a rustls
//! server on loopback trusting a private CA), gzip, labels and structured metadata
//! rendered from fields nested to serde_json's depth limit, records of 1 MiB, and a file
//! sink beside it. A stack overflow would abort the test process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::dispatcher::{BatchSettings, Dispatcher};
use super::file::FileSink;
use super::loki::LokiSink;
use super::{queue, Sink};
use crate::capture::record::{sample_records, Fields, Position, Record};
use crate::capture::timestamp::Timestamp;
use crate::config::{FileSinkConfig, LokiSinkConfig, TlsConfig};
use crate::health::DeliveryHealth;
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::shutdown::Shutdown;
use crate::threads::{self, DISPATCHER_STACK};

/// A CA (its PEM written to `ca_path`) and a server configuration for `localhost`.
fn pki(ca_path: &std::path::Path) -> Arc<ServerConfig> {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(ca_path, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
        .unwrap();
    Arc::new(config)
}

/// Answers 204 to every push, one TLS connection each, until `stop`; counts the pushes.
fn serve(listener: &TcpListener, tls: &Arc<ServerConfig>, pushes: &AtomicUsize, stop: &AtomicBool) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let Ok((tcp, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        tcp.set_nonblocking(false).unwrap();
        let conn = ServerConnection::new(tls.clone()).unwrap();
        let mut reader = BufReader::new(StreamOwned::new(conn, tcp));
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                pushes.fetch_add(1, Ordering::SeqCst);
                let answer =
                    "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let stream = reader.get_mut();
                stream.write_all(answer.as_bytes()).unwrap();
                stream.conn.send_close_notify();
                let _ = stream.flush();
                break;
            }
        }
    }
}

/// The JSON object of fields nested to serde_json's depth limit, as a record keeps it.
fn deep_fields() -> String {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let depth = (1..1000)
        .take_while(|&d| serde_json::from_str::<serde_json::Value>(&nested(d)).is_ok())
        .last()
        .unwrap_or(1);
    format!("{{\"level\":\"info\",\"deep\":{}}}", nested(depth - 1))
}

fn records(n: usize) -> Vec<Record> {
    let mut records = sample_records(n, "m");
    let fields = deep_fields();
    for (i, r) in (1..).zip(records.iter_mut()) {
        r.message = "x".repeat(1 << 20);
        r.fields = Fields::Json(fields.as_str().into());
        r.position = Position {
            time: Timestamp::from_nanos(i),
            frames_at_time: 1,
            file: None,
            marks: [None; 2],
        };
    }
    records
}

/// Delivers `n` records through the dispatcher on a thread of `stack` bytes; gives the
/// pushes the Loki server took and the lines the file sink wrote.
fn deliver_deepest(stack: usize, n: usize) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let tls = pki(&dir.path().join("ca.pem"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let loki = LokiSinkConfig {
        url: format!("https://localhost:{port}"),
        gzip: true,
        labels: [("level".into(), "{fields.level}".into())].into(),
        structured_metadata: [("deep".into(), "{fields.deep}".into())].into(),
        tls: TlsConfig {
            ca_file: dir.path().join("ca.pem"),
            ..TlsConfig::default()
        },
        ..LokiSinkConfig::default()
    };
    let file = FileSinkConfig {
        path: dir.path().join("out.jsonl"),
        ..FileSinkConfig::default()
    };
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(LokiSink::new("loki-0".into(), &loki).unwrap()),
        Box::new(FileSink::open("file-0".into(), &file).unwrap()),
    ];
    let (tx, rx) = queue::bounded(64, usize::MAX);
    let settings = BatchSettings {
        records: 2,
        bytes: 4 << 20,
        timeout: Duration::from_millis(1),
        shutdown_timeout: Duration::from_secs(30),
        flush_interval: Duration::from_secs(1),
        write_interval: Duration::ZERO,
    };
    let dispatcher = Dispatcher::new(
        rx,
        sinks,
        settings,
        Arc::new(Positions::in_memory(Timestamp::from_nanos(0))),
        Arc::new(DeliveryHealth::default()),
        Arc::new(Metrics::new().unwrap()),
        Shutdown::new(),
    );
    let (pushes, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    std::thread::scope(|s| {
        let server = s.spawn(|| serve(&listener, &tls, &pushes, &stop));
        let thread = threads::spawn("deep".into(), stack, move || dispatcher.run()).unwrap();
        tx.send_all(&mut records(n)).unwrap();
        // The queue closed: the dispatcher delivers what it holds and returns.
        drop(tx);
        thread.join().expect("the dispatcher thread");
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
    });
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    (pushes.load(Ordering::SeqCst), written.lines().count())
}

#[test]
fn the_deepest_dispatcher_path_fits_in_half_the_dispatcher_stack() {
    let (pushes, lines) = deliver_deepest(DISPATCHER_STACK / 2, 4);
    assert!(pushes >= 2, "{pushes} pushes: batches of 2 records");
    assert_eq!(lines, 4);
}
