//! A TLS failure told in an operator's words: what went wrong (unknown CA, name mismatch,
//! expired certificate, client certificate required or refused), rustls's own detail, and
//! the `tls` key that fixes it. The text goes to the log and to `/health` through the
//! sink's error; the batch waits and is retried, as in any outage.

use std::io;

use rustls::{AlertDescription, CertificateError};

/// `e` unchanged, unless it carries a rustls error: then the same kind with the cause told.
pub fn describe_io(e: io::Error, client_cert: bool) -> io::Error {
    let text = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe(tls, client_cert),
        None => return e,
    };
    io::Error::new(e.kind(), text)
}

/// "TLS: <what>: <rustls detail>[; <what to set>]".
pub fn describe(e: &rustls::Error, client_cert: bool) -> String {
    let (what, hint) = match e {
        rustls::Error::InvalidCertificate(c) => certificate(c),
        rustls::Error::AlertReceived(alert) => refused(*alert, client_cert),
        _ => ("handshake failed", ""),
    };
    format!("TLS: {what}: {e}{hint}")
}

fn certificate(c: &CertificateError) -> (&'static str, &'static str) {
    match c {
        CertificateError::UnknownIssuer => (
            "unknown CA: the server's certificate is not signed by a trusted CA",
            "; set tls.ca_file to the CA that signed it",
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            "name mismatch: the server's certificate is not valid for the name verified",
            "; set tls.server_name to a name the certificate holds",
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            "expired certificate: the server's certificate has expired",
            "",
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "certificate not valid yet: check the clocks of both hosts",
            "",
        ),
        _ => ("the server's certificate is not accepted", ""),
    }
}

fn refused(alert: AlertDescription, client_cert: bool) -> (&'static str, &'static str) {
    use AlertDescription as A;
    match (alert, client_cert) {
        (A::CertificateRequired, false) => (
            "client certificate required: the server refused the connection",
            "; set tls.cert_file and tls.key_file",
        ),
        (A::HandshakeFailure, false) => (
            "the server refused the handshake (does it require a client certificate?)",
            "; set tls.cert_file and tls.key_file if it does",
        ),
        (
            A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::HandshakeFailure
            | A::DecryptError,
            true,
        ) => ("the server refused our client certificate", ""),
        _ => ("the server ended the connection with an alert", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_named_with_the_key_that_fixes_them() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe(&unknown, false);
        assert!(text.starts_with("TLS: unknown CA"), "{text}");
        assert!(text.contains("tls.ca_file"), "{text}");
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(describe(&name, false).contains("name mismatch"));
        assert!(describe(&name, false).contains("tls.server_name"));
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(describe(&expired, false).contains("expired certificate"));
        let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert!(describe(&required, false).contains("client certificate required"));
        assert!(describe(&required, true).contains("refused our client certificate"));
    }

    #[test]
    fn io_errors_without_tls_pass_unchanged() {
        let plain = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(describe_io(plain, false).to_string(), "refused");
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let told = describe_io(tls, false);
        assert_eq!(told.kind(), io::ErrorKind::InvalidData);
        assert!(told.to_string().contains("unknown CA"), "{told}");
    }
}
