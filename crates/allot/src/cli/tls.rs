//! TLS failures in words a person can act on. rustls and webpki describe some of
//! theirs with Rust debug output (`invalid peer certificate:
//! Other(OtherError(CaUsedAsEndEntity))`); each kind gets a sentence here that says
//! what is wrong and who can fix it.

use rustls::{CertificateError, Error as TlsError};

use super::CliError;

/// The exit code of a TLS failure (the certificate is not trusted, or the
/// handshake failed): distinct from "cannot reach" (3), as retrying does not help.
pub const EXIT_TLS: u8 = 9;

/// A failed TLS connection to `server` (`ca` is the CA file the client trusts).
pub fn failure(server: &str, ca: Option<&str>, e: &std::io::Error) -> CliError {
    let trust = match ca {
        Some(ca) => format!("the CA certificate allot trusts ({ca})"),
        None => "the CA certificate allot trusts".to_string(),
    };
    let fix_ca =
        "give allot the CA certificate that signed the server's certificate: `ca_cert` in the client config, or ALLOT_CA_CERT=FILE.pem";
    let (message, hint): (String, Option<String>) = match e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
        Some(TlsError::InvalidCertificate(c)) => certificate(c, &trust, fix_ca),
        Some(TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } | TlsError::InappropriateHandshakeMessage { .. }) => (
            "the server did not answer in TLS".into(),
            Some(format!("is it serving plain HTTP? then use {} instead", server.replacen("https://", "http://", 1))),
        ),
        Some(TlsError::AlertReceived(a)) => {
            (format!("the server refused the TLS handshake ({})", words(&format!("{a:?}"))), Some("the server's log says why".into()))
        }
        Some(TlsError::PeerIncompatible(_)) => {
            ("the server and allot have no TLS version or cipher in common (allot speaks TLS 1.2 and 1.3)".into(), None)
        }
        Some(TlsError::NoCertificatesPresented) => ("the server presented no certificate".into(), None),
        Some(TlsError::General(m)) => (format!("TLS failed: {m}"), None),
        Some(_) => ("the TLS handshake with the server failed".into(), None),
        None => match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => (
                "the server closed the connection during the TLS handshake".into(),
                Some(format!("is it serving plain HTTP? then use {}", server.replacen("https://", "http://", 1))),
            ),
            _ => (format!("the TLS handshake failed: {e}"), None),
        },
    };
    let e = CliError::new(EXIT_TLS, format!("cannot talk to {server} securely: {message}"));
    match hint {
        Some(h) => e.hint(h),
        None => e,
    }
}

fn certificate(c: &CertificateError, trust: &str, fix_ca: &str) -> (String, Option<String>) {
    let reissue = "the server's operator must install a certificate issued for it (allot server --tls-cert, --tls-key)";
    match c {
        CertificateError::UnknownIssuer => (format!("the server's certificate is not signed by {trust}"), Some(fix_ca.into())),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            ("the server's certificate has expired".into(), Some("the server's operator must renew it".into()))
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "the server's certificate is not valid yet".into(),
            Some("check the clock of this machine and of the server (or wait until the certificate's start)".into()),
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            "the server's certificate is not issued for the name or address allot connected to".into(),
            Some("use the server name the certificate names (in --server or the client config), or reissue the certificate with this name".into()),
        ),
        CertificateError::Revoked => ("the server's certificate has been revoked".into(), Some(reissue.into())),
        CertificateError::BadSignature => (format!("the server's certificate signature does not verify against {trust}"), Some(fix_ca.into())),
        CertificateError::BadEncoding => ("the server's certificate is malformed".into(), Some(reissue.into())),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            ("the server's certificate is not meant for TLS servers (its extended key usage)".into(), Some(reissue.into()))
        }
        CertificateError::Other(o) => match o.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => (
                "the server's certificate is a CA certificate used as a server certificate".into(),
                Some("the server needs a certificate issued by that CA for its name, with its own key; the CA certificate itself goes to clients (ca_cert, ALLOT_CA_CERT)".into()),
            ),
            Some(webpki::Error::EndEntityUsedAsCa) => (
                format!("{trust} is a server certificate, not a CA certificate"),
                Some(fix_ca.into()),
            ),
            Some(webpki::Error::CertDistrusted) => (format!("the server's certificate chains to a CA that {trust} marks as distrusted"), Some(fix_ca.into())),
            Some(
                webpki::Error::NameConstraintViolation
                | webpki::Error::PathLenConstraintViolated
                | webpki::Error::MaximumPathDepthExceeded,
            ) => ("the server's certificate chain breaks its CA's constraints".into(), Some(reissue.into())),
            Some(webpki::Error::UnsupportedCertVersion | webpki::Error::UnsupportedCriticalExtension) => {
                ("the server's certificate uses a version or critical extension allot does not support".into(), Some(reissue.into()))
            }
            _ => ("the server's certificate was refused".into(), Some(reissue.into())),
        },
        _ => ("the server's certificate was refused".into(), Some(reissue.into())),
    }
}

/// `HandshakeFailure` as "handshake failure".
fn words(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::OtherError;

    use super::*;

    fn io(e: TlsError) -> std::io::Error {
        // As tokio-rustls hands it over.
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    fn says(e: TlsError) -> CliError {
        let c = failure("https://gpu.example:7070", Some("ca.pem"), &io(e));
        let text = format!("{} {}", c.message, c.hint.clone().unwrap_or_default());
        for debug in ["Other(", "OtherError", "Error {", "{ ", "::"] {
            assert!(!text.contains(debug), "debug output `{debug}` in: {text}");
        }
        assert_eq!(c.code, EXIT_TLS);
        c
    }

    #[test]
    fn every_kind_in_words() {
        let other = |e: webpki::Error| TlsError::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))));
        let c = says(other(webpki::Error::CaUsedAsEndEntity));
        assert!(c.message.contains("is a CA certificate used as a server certificate"), "{}", c.message);
        assert!(c.hint.unwrap().contains("issued by that CA"));
        assert!(
            says(TlsError::InvalidCertificate(CertificateError::UnknownIssuer))
                .message
                .contains("not signed by the CA certificate allot trusts (ca.pem)")
        );
        assert!(says(TlsError::InvalidCertificate(CertificateError::NotValidForName)).message.contains("not issued for the name"));
        assert!(says(TlsError::InvalidCertificate(CertificateError::Expired)).message.contains("expired"));
        assert!(says(other(webpki::Error::EndEntityUsedAsCa)).message.contains("(ca.pem) is a server certificate"));
        assert!(says(other(webpki::Error::MalformedExtensions)).message.contains("refused"));
        let c = says(TlsError::AlertReceived(rustls::AlertDescription::HandshakeFailure));
        assert!(c.message.contains("(handshake failure)"), "{}", c.message);
        let c = says(TlsError::InvalidMessage(rustls::InvalidMessage::InvalidContentType));
        assert!(c.hint.unwrap().contains("http://gpu.example:7070"));
        let c = failure("https://h:1", None, &std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(c.message.contains("closed the connection") && c.code == EXIT_TLS, "{}", c.message);
    }
}
