//! Request extractors whose every rejection is a JSON `{code, message, field}`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorKind};

/// A JSON body: `application/json`, size-limited, unknown fields rejected (by the
/// types), errors naming the field path.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Serialize> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        if !json {
            return Err(ApiError::new(ErrorKind::UnsupportedMediaType, "expected a body of content-type application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorKind::TooLarge, "request body too large")
            } else {
                ApiError::new(ErrorKind::Invalid, format!("cannot read body: {e}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON object, naming the field path of the first error.
pub fn parse_json<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b == b'[') {
        return Err(ApiError::new(ErrorKind::Invalid, "expected a JSON object, found an array"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let err = ApiError::new(ErrorKind::Invalid, e.inner().to_string());
        if path == "." { err } else { err.with_field(path) }
    })?;
    de.end().map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))?;
    // serde also takes a struct from an array of its fields in order (`[]` is an
    // empty update): the API's objects must be JSON objects, as documented.
    if bytes.contains(&b'[') {
        let input: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::new(ErrorKind::Invalid, e.to_string()))?;
        let output = serde_json::to_value(&v).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
        if let Some(path) = array_for_object(&input, &output, String::new()) {
            let err = ApiError::new(ErrorKind::Invalid, "expected a JSON object, found an array");
            return Err(if path.is_empty() { err } else { err.with_field(path) });
        }
    }
    Ok(v)
}

/// The path of the first place where `input` has an array and `output` (the parsed
/// value, serialized again) an object.
fn array_for_object(input: &Value, output: &Value, path: String) -> Option<String> {
    match (input, output) {
        (Value::Array(_), Value::Object(_)) => Some(path),
        (Value::Object(i), Value::Object(o)) => o.iter().find_map(|(k, ov)| {
            let iv = i.get(k)?;
            array_for_object(iv, ov, if path.is_empty() { k.clone() } else { format!("{path}.{k}") })
        }),
        (Value::Array(i), Value::Array(o)) => {
            i.iter().zip(o).enumerate().find_map(|(n, (iv, ov))| array_for_object(iv, ov, format!("{path}[{n}]")))
        }
        _ => None,
    }
}

/// Query parameters; `finish` rejects any that were not taken.
pub struct Params(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(q).map_err(|e| ApiError::new(ErrorKind::Invalid, format!("bad query string: {e}")))?;
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::invalid(k, "given more than once"));
            }
        }
        Ok(Params(map))
    }
}

impl Params {
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn take_parsed<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<Option<T>, ApiError> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::invalid(key, format!("`{v}` is not {what}"))),
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.into_keys().next() {
            None => Ok(()),
            Some(k) => Err(ApiError::invalid(k.clone(), format!("unknown query parameter `{k}`"))),
        }
    }
}

/// The authenticated caller.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        state.tokens.authenticate(&*state.store, header).await.map(Auth)
    }
}

/// A numeric id from the path; anything else names nothing, so it is a 404.
pub fn parse_id(raw: &str, what: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| ApiError::not_found(format!("{what} `{raw}` not found")))
}

/// One path segment (`{id}`, `{name}`); a segment that cannot be decoded names
/// nothing, so it is a 404.
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Segment(p.0))
            .map_err(|_| ApiError::not_found("no such resource"))
    }
}
