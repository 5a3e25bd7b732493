//! Ask a token service whether an event may pass (capability `http`, and `kv` for the cache: the module
//! imports both, so it needs both granted even with `cacheSeconds` 0).
//!
//! Config: `{"url": "<token service>", "header": "Authorization", "cacheSeconds": N}` (header defaults to
//! "Authorization", cacheSeconds to 0: no cache). The header is read from the request's headers in the
//! system event (`data.headers`, name matched in any case; the plugin needs `sensitiveHeaders` to see
//! `Authorization`). Missing: 401. Otherwise the plugin POSTs to `url` with the same header and an empty
//! body: a 2xx answer lets the event through, anything else (or a call error) rejects it with 401. With
//! `cacheSeconds > 0`, an allow is cached in kv at `auth:<FNV-1a 64 of the value, hex>` holding the
//! whole header value; a cache hit counts only when that stored value equals the presented one.

use eventgateway_pdk::{http, kv, plugin, Event, Plugin, Reaction, Subscription, Value};

const MAX_CACHE_SECONDS: i64 = 31_536_000;

struct AuthCheck {
    url: String,
    header: String,
    cache_seconds: i64,
}

fn invalid(what: &str) -> String {
    format!("authcheck: invalid config: {}", what)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A request header of the system event (the first string under a name matching in any case).
fn header<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.data()["headers"]
        .as_map()?
        .iter()
        .filter(|(k, _)| k.as_str().map_or(false, |k| k.eq_ignore_ascii_case(name)))
        .find_map(|(_, v)| v.as_str())
}

impl Plugin for AuthCheck {
    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::sync("eventgateway.event.received")]
    }

    fn init(config: &Value) -> Result<Self, String> {
        let url = match config.get("url") {
            Some(Value::Str(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Nil) => return Err(invalid("url is required")),
            Some(_) => return Err(invalid("url must be a non-empty string")),
        };
        let header = match config.get("header") {
            None | Some(Value::Nil) => "Authorization".to_string(),
            Some(Value::Str(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(invalid("header must be a non-empty string")),
        };
        let cache_seconds = match config.get("cacheSeconds") {
            None | Some(Value::Nil) => 0,
            Some(v) => match v.as_i64() {
                Some(n) if (0..=MAX_CACHE_SECONDS).contains(&n) => n,
                _ => return Err(invalid(&format!("cacheSeconds must be an integer from 0 to {}", MAX_CACHE_SECONDS))),
            },
        };
        Ok(AuthCheck { url, header, cache_seconds })
    }

    fn react(&mut self, event: &Event) -> Reaction {
        let presented = match header(event, &self.header) {
            Some(value) => value,
            None => return Reaction::reject(format!("missing {} header", self.header), 401),
        };
        let cache_key = format!("auth:{:016x}", fnv1a64(presented.as_bytes()));
        if self.cache_seconds > 0 {
            // A kv error is a miss: the token service decides.
            if let Ok(Some(stored)) = kv::get(&cache_key) {
                if stored == presented.as_bytes() {
                    return Reaction::Continue;
                }
            }
        }
        let request = http::Request {
            method: "POST".to_string(),
            url: self.url.clone(),
            headers: vec![(self.header.clone(), presented.to_string())],
            ..Default::default()
        };
        match http::request(&request) {
            Ok(response) if response.is_success() => {
                if self.cache_seconds > 0 {
                    // Best effort: a failed write only costs a call next time.
                    let _ = kv::set(&cache_key, presented, self.cache_seconds * 1000);
                }
                Reaction::Continue
            }
            Ok(_) => Reaction::reject("unauthorized", 401),
            Err(e) => Reaction::reject(format!("unauthorized: token service error {}", e.code()), 401),
        }
    }
}

plugin!(AuthCheck);
