//! `ClientTls::new` on generated material: what it accepts, and each refusal naming its
//! key (missing file, a PEM without certificate or key, a key of another certificate, a
//! half-configured client certificate, a bad `server_name`).

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};

use super::*;

struct Material {
    dir: tempfile::TempDir,
}

impl Material {
    /// A CA, a client certificate it signed and that certificate's key (PKCS#8 EC).
    fn new() -> Material {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let other_key = KeyPair::generate().unwrap();
        let m = Material { dir };
        m.write("ca.pem", &ca_cert.pem());
        m.write("client.pem", &client.pem());
        m.write("client.key", &client_key.serialize_pem());
        m.write("other.key", &other_key.serialize_pem());
        m
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn tls(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> TlsConfig {
    let path = |p: Option<&Path>| p.map(Path::to_path_buf).unwrap_or_default();
    TlsConfig {
        ca_file: path(ca),
        cert_file: path(cert),
        key_file: path(key),
        ..TlsConfig::default()
    }
}

fn refusal(cfg: &TlsConfig) -> TlsError {
    match ClientTls::new(cfg) {
        Ok(_) => panic!("accepted {cfg:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_and_complete_material_are_accepted() {
    let m = Material::new();
    let plain = ClientTls::new(&TlsConfig::default()).unwrap();
    assert!(!plain.is_insecure() && !plain.has_client_cert());
    assert!(plain.name_for("127.0.0.1").is_ok());
    let (ca, cert, key) = (m.path("ca.pem"), m.path("client.pem"), m.path("client.key"));
    let full = ClientTls::new(&tls(Some(&ca), Some(&cert), Some(&key))).unwrap();
    assert!(full.has_client_cert());
    let named = TlsConfig {
        server_name: "loki.internal".into(),
        insecure_skip_verify: true,
        ..TlsConfig::default()
    };
    let named = ClientTls::new(&named).unwrap();
    assert!(named.is_insecure());
    let name = named.name_for("10.0.0.5").unwrap();
    assert_eq!(name.to_str(), "loki.internal");
}

#[test]
fn each_refusal_names_its_key() {
    let m = Material::new();
    let missing = m.path("missing.pem");
    let e = refusal(&tls(Some(&missing), None, None));
    assert_eq!(e.key, "ca_file");
    assert!(e.message.contains("cannot read"), "{e}");

    let not_a_cert = m.path("client.key");
    let e = refusal(&tls(Some(&not_a_cert), None, None));
    assert_eq!(e.key, "ca_file");
    assert!(e.message.contains("no PEM certificate"), "{e}");

    let (cert, key) = (m.path("client.pem"), m.path("client.key"));
    let e = refusal(&tls(None, Some(&cert), None));
    assert_eq!(
        (e.key, e.message.as_str()),
        ("key_file", "required when cert_file is set")
    );
    let e = refusal(&tls(None, None, Some(&key)));
    assert_eq!(e.key, "cert_file");

    let e = refusal(&tls(None, Some(&key), Some(&key)));
    assert_eq!(e.key, "cert_file", "a key is not a certificate: {e}");
    let e = refusal(&tls(None, Some(&cert), Some(&cert)));
    assert_eq!(e.key, "key_file");
    assert!(e.message.contains("no PEM private key"), "{e}");

    let other = m.path("other.key");
    let e = refusal(&tls(None, Some(&cert), Some(&other)));
    assert_eq!(e.key, "key_file");
    assert!(
        e.message.contains("does not belong to the certificate"),
        "{e}"
    );

    let bad_name = TlsConfig {
        server_name: "not a name!".into(),
        ..TlsConfig::default()
    };
    assert_eq!(refusal(&bad_name).key, "server_name");
}

/// An X.509 v1 certificate (`openssl x509 -req -signkey` without extensions).
const V1_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBFjCBvQIUROd0vVc396JpvR7oE5o4L3ABUn8wCgYIKoZIzj0EAwIwDTELMAkG
A1UEAwwCdjEwIBcNMjYxMjAyMTAzNDA2WhgPMjEyNjExMDgxMDM0MDZaMA0xCzAJ
BgNVBAMMAnYxMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0p3ui1zYNwn3tdDE
agGI9M+vYR9f3lZhGPdrrdmabIimO4E6dXS055/JKRiXM0Lz/7OQVjaBESbIfYoa
bn9eZjAKBggqhkjOPQQDAgNIADBFAiA4u4gY3Sw9NueEUz1eevmN5Tv/eR1Sh6Pu
WnEn5OnK1QIhAIx3Nwmn0Ldi5QoA2etbUvTO9E356/CkNsUoSX+pG49c
-----END CERTIFICATE-----
";

#[test]
fn bad_certificates_and_encrypted_keys_are_named() {
    let m = Material::new();
    let ca = std::fs::read_to_string(m.path("ca.pem")).unwrap();
    let broken = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
    let bundle = m.write("bundle.pem", &format!("{ca}{broken}"));
    let e = refusal(&tls(Some(&bundle), None, None));
    assert_eq!(e.key, "ca_file");
    assert!(e.message.contains("certificate 2 of the file"), "{e}");

    let v1 = m.write("v1.pem", V1_CERT);
    let key = m.path("client.key");
    let e = refusal(&tls(None, Some(&v1), Some(&key)));
    assert_eq!(e.key, "cert_file");
    assert!(e.message.contains("X.509 v1"), "{e}");

    let encrypted = m.write(
        "enc.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = refusal(&tls(None, Some(&m.path("client.pem")), Some(&encrypted)));
    assert_eq!(e.key, "key_file");
    assert!(e.message.contains("encrypted"), "{e}");
}
