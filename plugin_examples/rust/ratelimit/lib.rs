//! A fixed-window rate limiter on the gateway's shared kv (capability `kv`): the (limit+1)-th event of
//! a key within `windowSeconds` is rejected with 429.
//!
//! Config: `{"limit": N, "windowSeconds": S, "keyBy": "source" | "type" | "header:<Name>",
//! "onError": "open" | "closed"}` (keyBy defaults to "source", onError to "open"). The key's value is
//! the incoming event's `source` or `type`, or a request header (name matched in any case); a missing
//! one counts as "". The counter lives at kv key `rl:<value>` (`rl#<FNV-1a 64 in hex>` past 200 bytes),
//! created by `kv_incr` with the window as its TTL. A kv error lets the event through with a warning
//! (`onError: open`) or rejects it with 503 (`closed`).

use eventgateway_pdk::{kv, log, plugin, Event, Plugin, Reaction, Subscription, Value};

/// The longest TTL the host accepts (a year), in seconds.
const MAX_WINDOW_SECONDS: i64 = 31_536_000;
/// Longer key values are hashed into the kv key.
const MAX_PLAIN_KEY: usize = 200;
/// How much of the key value a rejection message quotes.
const MAX_QUOTED: usize = 100;

enum KeyBy {
    Source,
    Type,
    Header(String),
}

struct RateLimit {
    limit: i64,
    window_seconds: i64,
    key_by: KeyBy,
    /// The configured `keyBy` text, as the rejection message names it.
    key_by_text: String,
    fail_closed: bool,
}

fn invalid(what: &str) -> String {
    format!("ratelimit: invalid config: {}", what)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A request header of the system event (the first string under a name matching in any case).
fn header<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.data()["headers"]
        .as_map()?
        .iter()
        .filter(|(k, _)| k.as_str().map_or(false, |k| k.eq_ignore_ascii_case(name)))
        .find_map(|(_, v)| v.as_str())
}

/// A required integer field from 1 to `max` (`what` says so in the error).
fn positive_int(config: &Value, field: &str, max: i64, what: &str) -> Result<i64, String> {
    match config.get(field) {
        None | Some(Value::Nil) => Err(invalid(&format!("{} is required ({})", field, what))),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(invalid(&format!("{} must be {}", field, what))),
        },
    }
}

impl Plugin for RateLimit {
    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::sync("eventgateway.event.received")]
    }

    fn init(config: &Value) -> Result<Self, String> {
        let limit = positive_int(config, "limit", i64::MAX, "a positive integer")?;
        let window_seconds =
            positive_int(config, "windowSeconds", MAX_WINDOW_SECONDS, "an integer from 1 to 31536000")?;
        let key_by_text = match config.get("keyBy") {
            None | Some(Value::Nil) => "source".to_string(),
            Some(Value::Str(s)) => s.clone(),
            Some(other) => return Err(invalid(&format!("keyBy must be a string, got {}", other.type_name()))),
        };
        let key_by = match key_by_text.as_str() {
            "source" => KeyBy::Source,
            "type" => KeyBy::Type,
            text if text.starts_with("header:") && text.len() > "header:".len() => {
                KeyBy::Header(text["header:".len()..].to_string())
            }
            text => {
                return Err(invalid(&format!(
                    "keyBy must be \"source\", \"type\" or \"header:<Name>\", got {:?}",
                    text
                )))
            }
        };
        let fail_closed = match config.get("onError") {
            None | Some(Value::Nil) => false,
            Some(Value::Str(s)) if s == "open" => false,
            Some(Value::Str(s)) if s == "closed" => true,
            Some(_) => return Err(invalid("onError must be \"open\" or \"closed\"")),
        };
        Ok(RateLimit { limit, window_seconds, key_by, key_by_text, fail_closed })
    }

    fn react(&mut self, event: &Event) -> Reaction {
        let value: &str = match &self.key_by {
            KeyBy::Source => event.incoming().source().unwrap_or(""),
            KeyBy::Type => event.incoming().event_type(),
            KeyBy::Header(name) => header(event, name).unwrap_or(""),
        };
        let key = if value.len() <= MAX_PLAIN_KEY {
            format!("rl:{}", value)
        } else {
            format!("rl#{:016x}", fnv1a64(value.as_bytes()))
        };
        match kv::incr(&key, 1, self.window_seconds * 1000) {
            Ok(count) if count > self.limit => Reaction::reject(
                format!(
                    "rate limit exceeded for {} \"{}\": {} events per {} s",
                    self.key_by_text,
                    cut(value, MAX_QUOTED),
                    self.limit,
                    self.window_seconds
                ),
                429,
            ),
            Ok(_) => Reaction::Continue,
            Err(e) if self.fail_closed => {
                Reaction::reject(format!("rate limiter unavailable: kv error {}", e.code()), 503)
            }
            Err(e) => {
                log::warn(&format!("ratelimit: kv error {} ({}); letting the event through", e.code(), e.name()));
                Reaction::Continue
            }
        }
    }
}

plugin!(RateLimit);
