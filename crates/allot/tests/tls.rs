//! The CLI against an HTTPS server whose certificate it cannot trust: each failure
//! is a sentence that says what is wrong, never rustls's debug output, and exits 9.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

const CLUSTER: &str = r#"
version = 1
flavors = [{ name = "H100" }]
[[nodes]]
name = "n0"
at = "site/block/leaf"
flavor = "H100"
gpus = 8
[[tenants]]
path = "org"
"#;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `allot server` over TLS with this certificate chain and key: (the server, its URL, the admin token).
fn serve(dir: &Path, name: &str, cert_pem: &str, key_pem: &str) -> (Server, String, String) {
    let (cert, key, cluster) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")), dir.join("cluster.toml"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    std::fs::write(&cluster, CLUSTER).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["server", "--listen", "127.0.0.1:0", "--cluster"])
        .arg(&cluster)
        .arg("--data-dir")
        .arg(dir.join(format!("data-{name}")))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let server = Server(child);
    let mut token = String::new();
    for line in lines.map_while(Result::ok) {
        if let Some(t) = line.strip_prefix("admin token (shown once, stored hashed): ") {
            token = t.to_string();
        }
        if let Some(rest) = line.strip_prefix("allot server listening on ") {
            let url = rest.split_whitespace().next().unwrap().to_string();
            assert!(url.starts_with("https://"), "{line}");
            return (server, url, token);
        }
    }
    panic!("the TLS server exited before printing its address");
}

/// `allot nodes` against `url`, trusting the CA certificate `ca_pem`.
fn nodes(dir: &Path, url: &str, token: &str, ca_pem: &str) -> Output {
    let ca = dir.join("trusted-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["nodes", "--server", url, "--token", token])
        .current_dir(dir)
        .env("HOME", dir)
        .env("ALLOT_CA_CERT", &ca)
        .env_remove("ALLOT_SERVER")
        .env_remove("ALLOT_TOKEN")
        .env_remove("ALLOT_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

/// The command failed with exit code 9 and says `what`, in words.
fn refused(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(9), "exit code 9 (TLS): {err}");
    assert!(err.starts_with("error: cannot talk to https://127.0.0.1:"), "{err}");
    assert!(err.contains(what), "`{what}` missing: {err}");
    assert!(err.contains("hint: "), "says what to do: {err}");
    for debug in ["Other(", "OtherError", "CaUsedAsEndEntity", "UnknownIssuer", "NotValidForName", "{ "] {
        assert!(!err.contains(debug), "Rust debug output `{debug}`: {err}");
    }
    err
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    (p.self_signed(&key).unwrap(), key)
}

/// A server certificate for `names`, signed by the CA.
fn leaf(names: &[&str], ca: &rcgen::Certificate, ca_key: &KeyPair) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    (p.signed_by(&key, ca, ca_key).unwrap().pem(), key.serialize_pem())
}

#[test]
fn tls_failures_are_sentences_with_their_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, ca_key) = ca("test-ca");

    // Right: a certificate for 127.0.0.1 issued by the CA the client trusts.
    let (cert, key) = leaf(&["127.0.0.1"], &ca, &ca_key);
    let (_ok, url, token) = serve(d, "good", &cert, &key);
    let o = nodes(d, &url, &token, &ca.pem());
    assert!(o.status.success(), "a trusted certificate works: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("n0"));

    // The CA certificate itself served as the server's certificate.
    let (_s, url, token) = serve(d, "ca-as-server", &ca.pem(), &ca_key.serialize_pem());
    let err = refused(&nodes(d, &url, &token, &ca.pem()), "the server's certificate is a CA certificate used as a server certificate");
    assert!(err.contains("issued by that CA"), "{err}");

    // A certificate from another CA.
    let (other, other_key) = self::ca("other-ca");
    let (cert, key) = leaf(&["127.0.0.1"], &other, &other_key);
    let (_s, url, token) = serve(d, "other-ca", &cert, &key);
    refused(&nodes(d, &url, &token, &ca.pem()), "is not signed by the CA certificate allot trusts");

    // A certificate for another name.
    let (cert, key) = leaf(&["ctl1.example"], &ca, &ca_key);
    let (_s, url, token) = serve(d, "other-name", &cert, &key);
    refused(&nodes(d, &url, &token, &ca.pem()), "not issued for the name or address allot connected to");
}

#[test]
fn a_ca_file_that_holds_no_certificate_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = nodes(dir.path(), "https://127.0.0.1:1", "t", "not a certificate\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("trusted-ca.pem: holds no PEM certificate"), "{err}");
}
