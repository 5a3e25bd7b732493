//! Outbound HTTP (capability `http`, ABI.md section 7.1): a request to a URL under one of the
//! plugin's grants (`http = ["https://auth.example.com/"]`). Redirects are followed by the host
//! (each target checked against the grants); the response is capped by the host's `Limits`.
//!
//! ```text
//! let response = http::request(&http::Request {
//!     method: "POST".into(),
//!     url: "https://auth.example.com/check".into(),
//!     headers: vec![("Authorization".into(), token.into())],
//!     ..Default::default()
//! })?;
//! if response.is_success() { ... }
//! ```

use crate::capability::{check, raw, read_grown, CapError};
use crate::msgpack;
use crate::value::Value;

#[link(wasm_import_module = "eventgateway")]
extern "C" {
    fn http_request(req: i32, req_len: i32) -> i32;
    fn http_response(buf: i32, buf_len: i32) -> i32;
}

/// One request. An empty `method` is `GET`; `timeout_ms: None` leaves the timeout to the host (its
/// `Limits.http_timeout`, never past the reaction's own deadline).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub method: String,
    pub url: String,
    /// Sent in this order. `Host`, `Content-Length`, `Connection` and other hop-by-hop headers may not
    /// be set (`EG_INVALID`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: Option<u32>,
}

impl Request {
    /// The request as the msgpack map `http_request` takes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.url.len() + self.body.len());
        let count = 3 + usize::from(!self.method.is_empty()) + usize::from(self.timeout_ms.is_some());
        msgpack::write_map_header(&mut out, count);
        msgpack::write_str(&mut out, "url");
        msgpack::write_str(&mut out, &self.url);
        if !self.method.is_empty() {
            msgpack::write_str(&mut out, "method");
            msgpack::write_str(&mut out, &self.method);
        }
        msgpack::write_str(&mut out, "headers");
        msgpack::write_map_header(&mut out, self.headers.len());
        for (name, value) in &self.headers {
            msgpack::write_str(&mut out, name);
            msgpack::write_str(&mut out, value);
        }
        msgpack::write_str(&mut out, "body");
        msgpack::write(&mut out, &Value::Bin(self.body.clone()));
        if let Some(timeout) = self.timeout_ms {
            msgpack::write_str(&mut out, "timeoutMs");
            msgpack::write(&mut out, &Value::Int(timeout as i64));
        }
        out
    }
}

/// The answer: any HTTP status is a success of the call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    pub status: u16,
    /// Names in canonical case (`Content-Type`), repeated headers joined by `", "`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value, its name matched in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Read the host's msgpack answer. Bytes that are not the documented map are `CapError::Invalid`.
    pub fn decode(bytes: &[u8]) -> Result<Response, CapError> {
        let value = msgpack::decode(bytes).map_err(|_| CapError::Invalid)?;
        let status = value["status"].as_i64().filter(|s| (0..=999).contains(s)).ok_or(CapError::Invalid)?;
        let mut headers = Vec::new();
        if let Some(entries) = value["headers"].as_map() {
            for (k, v) in entries {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    headers.push((k.to_string(), v.to_string()));
                }
            }
        }
        let body = match &value["body"] {
            Value::Bin(b) => b.clone(),
            Value::Str(s) => s.clone().into_bytes(),
            _ => Vec::new(),
        };
        Ok(Response { status: status as u16, headers, body })
    }
}

/// Send `request` and wait for the answer (or an error code: `Denied`, `Timeout`, `Unavailable`,
/// `TooLarge`, `Invalid`, `NoFuel`).
pub fn request(request: &Request) -> Result<Response, CapError> {
    let encoded = request.encode();
    let (r, r_len) = raw(&encoded);
    // Safety: the host only reads the request during the call.
    let length = check(unsafe { http_request(r, r_len) })? as u32 as usize;
    // Safety: the host writes at most `buf_len` bytes at `buf` during the call.
    let bytes = read_grown(length, |buf, buf_len| unsafe { http_response(buf, buf_len) })?;
    Response::decode(&bytes)
}
