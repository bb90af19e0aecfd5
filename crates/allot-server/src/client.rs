//! A small HTTP/1.1 client of the API (one kept-alive connection per `Client`), for
//! tests, `allot bench api` and the CLI. Plain HTTP only.

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
    #[error("bad server url `{0}` (expected http://HOST:PORT)")]
    Url(String),
    #[error("connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{status}: {body}")]
    Status { status: u16, body: String },
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
    host: String,
    token: Option<String>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// `base` is `http://HOST:PORT`.
    pub fn new(base: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let host = base.strip_prefix("http://").ok_or_else(|| ClientError::Url(base.to_string()))?.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(ClientError::Url(base.to_string()));
        }
        Ok(Client { host: host.to_string(), token: token.map(String::from), sender: None })
    }

    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client { host: self.host.clone(), token: token.map(String::from), sender: None }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.host)
                .await
                .map_err(|source| ClientError::Connect { addr: self.host.clone(), source })?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| ClientError::Url(self.host.clone()))
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<hyper::Response<Incoming>, ClientError> {
        let mut b = hyper::Request::builder().method(method).uri(path).header(HOST, self.host.as_str());
        if let Some(t) = &self.token {
            b = b.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some((bytes, ct)) => {
                b = b.header(CONTENT_TYPE, ct);
                Full::new(Bytes::from(bytes))
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
