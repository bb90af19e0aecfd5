//! A small HTTP/1.1 client of the API (one kept-alive connection per `Client`), for
//! tests, `allot bench api` and the CLI. HTTPS with `Client::with_tls`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad server url `{0}` (expected http://HOST:PORT, or https:// with a TLS config)")]
    Url(String),
    #[error("connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{status}: {body}")]
    Status { status: u16, body: String },
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("bad response body: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A response: status and body.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Resp {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as `T` when the status is 2xx, else the error.
    pub fn ok<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if (200..300).contains(&self.status) { self.json() } else { Err(ClientError::Status { status: self.status, body: self.text() }) }
    }
}

pub struct Client {
    /// Servers to try, in order (`HOST:PORT`); the client follows the one that leads.
    hosts: Vec<String>,
    current: usize,
    token: Option<String>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// The header a standby server marks its answers with.
pub const ROLE_HEADER: &str = "x-allot-role";

fn parse_hosts(base: &str, scheme: &str) -> Result<Vec<String>, ClientError> {
    let hosts: Vec<String> = base
        .split(',')
        .map(|b| {
            let b = b.trim();
            let host = b.strip_prefix(scheme).ok_or_else(|| ClientError::Url(b.to_string()))?.trim_end_matches('/');
            if host.is_empty() || host.contains('/') { Err(ClientError::Url(b.to_string())) } else { Ok(host.to_string()) }
        })
        .collect::<Result<_, _>>()?;
    if hosts.is_empty() {
        return Err(ClientError::Url(base.to_string()));
    }
    Ok(hosts)
}

impl Client {
    /// `base` is `http://HOST:PORT`, or several separated by commas (HA servers: the
    /// client moves on from one it cannot reach, or that stands by).
    pub fn new(base: &str, token: Option<&str>) -> Result<Client, ClientError> {
        Ok(Client { hosts: parse_hosts(base, "http://")?, current: 0, token: token.map(String::from), tls: None, sender: None })
    }

    /// `base` is `https://HOST:PORT` (or several); certificates are checked against `tls`.
    pub fn with_tls(base: &str, token: Option<&str>, tls: std::sync::Arc<rustls::ClientConfig>) -> Result<Client, ClientError> {
        Ok(Client { hosts: parse_hosts(base, "https://")?, current: 0, token: token.map(String::from), tls: Some(tls), sender: None })
    }

    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client { hosts: self.hosts.clone(), current: self.current, token: token.map(String::from), tls: self.tls.clone(), sender: None }
    }

    /// The server this client talks to now.
    pub fn host(&self) -> &str {
        &self.hosts[self.current % self.hosts.len()]
    }

    fn next_host(&mut self) {
        self.current = (self.current + 1) % self.hosts.len();
        self.sender = None;
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let host = self.host().to_string();
            let stream =
                tokio::net::TcpStream::connect(&host).await.map_err(|source| ClientError::Connect { addr: host.clone(), source })?;
            let _ = stream.set_nodelay(true);
            let sender = match &self.tls {
                None => {
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    sender
                }
                Some(cfg) => {
                    let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).trim_matches(['[', ']']);
                    let name = rustls_pki_types::ServerName::try_from(name.to_string()).map_err(|_| ClientError::Url(host.clone()))?;
                    let tls = tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, stream).await.map_err(ClientError::Tls)?;
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    sender
                }
            };
            self.sender = Some(sender);
        }
        let host = self.host().to_string();
        self.sender.as_mut().ok_or(ClientError::Url(host))
    }

    async fn send_once(&mut self, method: &str, path: &str, body: Option<(Bytes, &str)>) -> Result<hyper::Response<Incoming>, ClientError> {
        let mut b = hyper::Request::builder().method(method).uri(path).header(HOST, self.host());
        if let Some(t) = &self.token {
            b = b.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some((bytes, ct)) => {
                b = b.header(CONTENT_TYPE, ct);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let req = b.body(body)?;
        let sender = self.connect().await?;
        sender.ready().await?;
        match sender.send_request(req).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.sender = None;
                Err(e.into())
            }
        }
    }

    /// Sends to the current server; with several, moves on from one that cannot be
    /// reached or stands by. A request that failed in flight is not retried (it may
    /// have been acted on).
    async fn send(&mut self, method: &str, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<hyper::Response<Incoming>, ClientError> {
        let body = body.map(|(b, ct)| (Bytes::from(b), ct));
        let tries = self.hosts.len();
        let mut i = 0;
        loop {
            i += 1;
            match self.send_once(method, path, body.clone()).await {
                Ok(r) if i < tries && r.headers().get(ROLE_HEADER).is_some_and(|v| v == "standby") => self.next_host(),
                Err(ClientError::Connect { .. }) if i < tries => self.next_host(),
                other => return other,
            }
        }
    }

    /// Any request; `body` is raw bytes with a content type.
    pub async fn raw(&mut self, method: &str, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<Resp, ClientError> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status().as_u16();
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Resp { status, content_type, body })
    }

    pub async fn get(&mut self, path: &str) -> Result<Resp, ClientError> {
        self.raw("GET", path, None).await
    }

    pub async fn post<B: Serialize>(&mut self, path: &str, body: &B) -> Result<Resp, ClientError> {
        self.raw("POST", path, Some((serde_json::to_vec(body)?, "application/json"))).await
    }

    pub async fn put<B: Serialize>(&mut self, path: &str, body: &B) -> Result<Resp, ClientError> {
        self.raw("PUT", path, Some((serde_json::to_vec(body)?, "application/json"))).await
    }

    pub async fn patch<B: Serialize>(&mut self, path: &str, body: &B) -> Result<Resp, ClientError> {
        self.raw("PATCH", path, Some((serde_json::to_vec(body)?, "application/json"))).await
    }

    pub async fn post_empty(&mut self, path: &str) -> Result<Resp, ClientError> {
        self.raw("POST", path, None).await
    }

    pub async fn delete(&mut self, path: &str) -> Result<Resp, ClientError> {
        self.raw("DELETE", path, None).await
    }

    /// Opens a streaming GET (Server-Sent Events) on its own connection.
    pub async fn stream(&self, path: &str) -> Result<(u16, Incoming), ClientError> {
        let mut c = self.with_token(self.token.as_deref());
        let resp = c.send("GET", path, None).await?;
        Ok((resp.status().as_u16(), resp.into_body()))
    }
}
