//! What the capability calls (`kv`, `http`, `metrics`; ABI.md section 7.1) answer when they fail.
//!
//! Every capability import returns an `i32`: `>= 0` is success, a negative value is one of the ABI's
//! error codes, the same for every capability. The wrappers turn a negative value into a [`CapError`].

use std::fmt;

/// One of the ABI's error codes (`EG_NOT_FOUND` .. `EG_NO_FUEL`); [`CapError::name`] gives its ABI
/// name and [`CapError::code`] its number. `Unknown` keeps a code this kit does not know (a newer host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapError {
    /// `EG_NOT_FOUND` (-1): `http_response` with no response held. (`kv::get` answers `Ok(None)`.)
    NotFound,
    /// `EG_INVALID` (-2): a malformed argument (bad key, TTL out of range, bad URL, header, metric name...).
    Invalid,
    /// `EG_TOO_LARGE` (-3): a key, value, request or response over its limit.
    TooLarge,
    /// `EG_QUOTA` (-4): the plugin's kv keys/bytes or metric series are used up.
    Quota,
    /// `EG_UNAVAILABLE` (-5): the backend cannot answer now (Redis down, connection refused...).
    Unavailable,
    /// `EG_DENIED` (-6): http: the URL is under no grant of this plugin.
    Denied,
    /// `EG_TIMEOUT` (-7): the call ran out of time (its own timeout or the reaction's deadline).
    Timeout,
    /// `EG_NOT_A_NUMBER` (-8): `kv::incr` on a value that is not a decimal int64, or an overflow.
    NotANumber,
    /// `EG_NO_FUEL` (-9): the remaining fuel could not pay for the call; nothing was done.
    NoFuel,
    /// Any other negative code.
    Unknown(i32),
}

impl CapError {
    /// The error for a negative return code (`EG_OK` and positive values are not errors; they map
    /// to `Unknown` here and callers never pass them).
    pub fn from_code(code: i32) -> CapError {
        match code {
            -1 => CapError::NotFound,
            -2 => CapError::Invalid,
            -3 => CapError::TooLarge,
            -4 => CapError::Quota,
            -5 => CapError::Unavailable,
            -6 => CapError::Denied,
            -7 => CapError::Timeout,
            -8 => CapError::NotANumber,
            -9 => CapError::NoFuel,
            other => CapError::Unknown(other),
        }
    }

    /// The ABI's number for the error (`-1` .. `-9`, or the unknown code as received).
    pub fn code(self) -> i32 {
        match self {
            CapError::NotFound => -1,
            CapError::Invalid => -2,
            CapError::TooLarge => -3,
            CapError::Quota => -4,
            CapError::Unavailable => -5,
            CapError::Denied => -6,
            CapError::Timeout => -7,
            CapError::NotANumber => -8,
            CapError::NoFuel => -9,
            CapError::Unknown(code) => code,
        }
    }

    /// The ABI's name for the error (`"EG_TIMEOUT"`; `"EG_UNKNOWN"` for a code this kit does not know).
    pub fn name(self) -> &'static str {
        match self {
            CapError::NotFound => "EG_NOT_FOUND",
            CapError::Invalid => "EG_INVALID",
            CapError::TooLarge => "EG_TOO_LARGE",
            CapError::Quota => "EG_QUOTA",
            CapError::Unavailable => "EG_UNAVAILABLE",
            CapError::Denied => "EG_DENIED",
            CapError::Timeout => "EG_TIMEOUT",
            CapError::NotANumber => "EG_NOT_A_NUMBER",
            CapError::NoFuel => "EG_NO_FUEL",
            CapError::Unknown(_) => "EG_UNKNOWN",
        }
    }
}

/// `EG_TIMEOUT (-7)`.
impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl std::error::Error for CapError {}

/// `Ok(rc)` for a success code, the error for a negative one.
pub(crate) fn check(rc: i32) -> Result<i32, CapError> {
    if rc < 0 {
        Err(CapError::from_code(rc))
    } else {
        Ok(rc)
    }
}

/// A buffer's address and length as the ABI's `i32` pair.
pub(crate) fn raw(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as usize as i32, bytes.len() as i32)
}

/// Call `fill(ptr, len)` -- a host function that writes at most `len` bytes and returns the length it
/// has (or needs), or an error code -- with a buffer grown to the needed length until the answer fits,
/// and return exactly the bytes the host wrote. Starts with `initial` bytes.
pub(crate) fn read_grown(initial: usize, mut fill: impl FnMut(i32, i32) -> i32) -> Result<Vec<u8>, CapError> {
    let mut buf: Vec<u8> = vec![0; initial];
    loop {
        let rc = check(fill(buf.as_mut_ptr() as usize as i32, buf.len() as i32))?;
        let needed = rc as u32 as usize;
        if needed <= buf.len() {
            // The host wrote `needed` bytes: keep those and nothing past them.
            buf.truncate(needed);
            return Ok(buf);
        }
        // Too small: the host wrote nothing and told the length it needs (the value may change
        // between calls, so ask again with that much rather than trusting the first answer).
        buf = vec![0; needed];
    }
}
