//! HTTPS with a generated certificate: the API works over TLS, plain HTTP does not.

mod common;

use std::sync::Arc;

use allot_api::*;
use allot_server::client::Client;
use allot_server::config::Limits;
use allot_server::store::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_tls_with_a_generated_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.key_pair.serialize_pem();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    let tls = allot_server::tls::server_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap();
    let store = SqliteStore::open_dir(&dir.path().join("data")).await.unwrap();
    let opts = allot_server::Options { tls: Some(tls), ..common::options(Arc::new(store), Limits::default()) };
    let running = allot_server::start(opts).await.unwrap();
    let token = running.admin_token.clone().unwrap();
    let roots = allot_server::tls::client_config(cert_pem.as_bytes()).unwrap();
    let mut c = Client::with_tls(&format!("https://{}", running.addr), Some(&token), roots).unwrap();
    assert_eq!(c.get("/healthz").await.unwrap().status, 200);
    let id = c.post("/v1/jobs", &common::job("org-a/proj", 1)).await.unwrap().ok::<SubmitResponse>().unwrap().id;
    let v: JobView = c.get(&format!("/v1/jobs/{id}")).await.unwrap().ok().unwrap();
    assert_eq!(v.tenant, "org-a/proj");
    // Plain HTTP to the TLS port gets no answer.
    let mut plain = Client::new(&format!("http://{}", running.addr), Some(&token)).unwrap();
    assert!(plain.get("/healthz").await.is_err());
    // A client that does not trust the certificate refuses the server.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let wrong = allot_server::tls::client_config(other.cert.pem().as_bytes()).unwrap();
    let mut c2 = Client::with_tls(&format!("https://{}", running.addr), Some(&token), wrong).unwrap();
    assert!(c2.get("/healthz").await.is_err());
    // Bad PEM is refused with a reason.
    assert!(allot_server::tls::server_config_from_pem(b"nope", key_pem.as_bytes()).is_err());
    running.shutdown().await;
}
