//! The `tls` table of a network sink: a private CA trusted besides the bundled roots, a
//! client certificate for mutual TLS, the name to verify, and the switch that verifies
//! nothing. Empty strings mean "not set", as in `config/log-capturer.toml`; only what is
//! set is printed by `--check-config`. The files are read and checked by
//! [`crate::tls::ClientTls::new`], at start and by `--check-config`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `tls = { ca_file, cert_file, key_file, server_name, insecure_skip_verify }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM bundle of CA certificates trusted in addition to the bundled Mozilla roots.
    #[serde(skip_serializing_if = "is_unset")]
    pub ca_file: PathBuf,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    #[serde(skip_serializing_if = "is_unset")]
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[serde(skip_serializing_if = "is_unset")]
    pub key_file: PathBuf,
    /// The name verified in the server's certificate and sent as SNI, when it differs
    /// from the URL's host (a DNS name or an IP address).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// Accept any server certificate. Logged as a warning at every start and listed on
    /// `/health`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

// serde's `skip_serializing_if` hands the field itself.
#[allow(clippy::ptr_arg)]
fn is_unset(path: &PathBuf) -> bool {
    path.as_os_str().is_empty()
}

impl TlsConfig {
    /// Nothing set: the bundled roots, no client certificate, the URL's host.
    pub fn is_default(&self) -> bool {
        *self == TlsConfig::default()
    }

    /// The CA file, when set.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        (!is_unset(&self.ca_file)).then_some(self.ca_file.as_path())
    }

    /// The client certificate and key files, each when set.
    pub fn client_files(&self) -> (Option<&std::path::Path>, Option<&std::path::Path>) {
        let cert = (!is_unset(&self.cert_file)).then_some(self.cert_file.as_path());
        let key = (!is_unset(&self.key_file)).then_some(self.key_file.as_path());
        (cert, key)
    }

    /// The name to verify instead of the URL's host, when set.
    pub fn server_name(&self) -> Option<&str> {
        (!self.server_name.is_empty()).then_some(self.server_name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_strings_are_unset_and_not_printed() {
        let cfg: TlsConfig = toml::from_str(
            r#"ca_file = ""
cert_file = ""
key_file = ""
server_name = ""
insecure_skip_verify = false"#,
        )
        .unwrap();
        assert!(cfg.is_default());
        assert_eq!(cfg.ca_file(), None);
        assert_eq!(cfg.client_files(), (None, None));
        assert_eq!(toml::to_string(&cfg).unwrap(), "");
        let set: TlsConfig =
            toml::from_str("ca_file = \"/etc/ca.pem\"\ninsecure_skip_verify = true").unwrap();
        let text = toml::to_string(&set).unwrap();
        assert!(text.contains("ca_file = \"/etc/ca.pem\""), "{text}");
        assert!(text.contains("insecure_skip_verify = true"), "{text}");
        assert!(toml::from_str::<TlsConfig>("ca = \"x\"").is_err());
    }
}
