//! A small msgpack reader and writer (the whole spec except nothing: every type, every width), so
//! the kit needs no crate from crates.io. Writing always picks the shortest encoding.

use crate::value::Value;

/// Why bytes are not msgpack, with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid msgpack at byte {}: {}", self.offset, self.message)
    }
}

/// Nesting deeper than this is refused rather than risking the (small) Wasm stack.
const MAX_DEPTH: usize = 512;

/// Decode exactly one value; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(reader.error(format!("{} trailing bytes after the value", bytes.len() - reader.pos)));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, message: String) -> DecodeError {
        DecodeError { offset: self.pos, message }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.pos < n {
            return Err(self.error(format!("truncated: need {} bytes, {} left", n, self.bytes.len() - self.pos)));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn uint(&mut self, width: usize) -> Result<u64, DecodeError> {
        Ok(self.take(width)?.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {}", MAX_DEPTH)));
        }
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Value::Int(marker as i64),
            0x80..=0x8f => self.map((marker & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((marker & 0x0f) as usize, depth)?,
            0xa0..=0xbf => self.string((marker & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 | 0xc5 | 0xc6 => {
                let len = self.uint(1 << (marker - 0xc4))? as usize;
                Value::Bin(self.take(len)?.to_vec())
            }
            0xc7 | 0xc8 | 0xc9 => {
                let len = self.uint(1 << (marker - 0xc7))? as usize;
                self.ext(len)?
            }
            0xca => Value::F32(f32::from_bits(self.uint(4)? as u32)),
            0xcb => Value::F64(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => {
                let u = self.uint(1 << (marker - 0xcc))?;
                if u <= i64::MAX as u64 {
                    Value::Int(u as i64)
                } else {
                    Value::UInt(u)
                }
            }
            0xd0..=0xd3 => {
                let width = 1usize << (marker - 0xd0);
                let raw = self.uint(width)?;
                let shift = 64 - 8 * width as u32;
                Value::Int(((raw << shift) as i64) >> shift)
            }
            0xd4..=0xd8 => self.ext(1 << (marker - 0xd4))?,
            0xd9 | 0xda | 0xdb => {
                let len = self.uint(1 << (marker - 0xd9))? as usize;
                self.string(len)?
            }
            0xdc | 0xdd => {
                let len = self.uint(2 << (marker - 0xdc))? as usize;
                self.array(len, depth)?
            }
            0xde | 0xdf => {
                let len = self.uint(2 << (marker - 0xde))? as usize;
                self.map(len, depth)?
            }
            0xe0..=0xff => Value::Int(marker as i8 as i64),
            0xc1 => {
                self.pos -= 1;
                return Err(self.error("byte 0xc1 is never used in msgpack".to_string()));
            }
        })
    }

    fn string(&mut self, len: usize) -> Result<Value, DecodeError> {
        let start = self.pos;
        let raw = self.take(len)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(s.to_string())),
            Err(e) => Err(DecodeError {
                offset: start + e.valid_up_to(),
                message: "str is not valid UTF-8".to_string(),
            }),
        }
    }

    fn ext(&mut self, len: usize) -> Result<Value, DecodeError> {
        let kind = self.take(1)?[0] as i8;
        Ok(Value::Ext(kind, self.take(len)?.to_vec()))
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every element takes at least one byte: a bigger count is a lie, not a reason to allocate.
        let mut items = Vec::with_capacity(len.min(self.bytes.len() - self.pos));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut entries = Vec::with_capacity(len.min(self.bytes.len() - self.pos));
        for _ in 0..len {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// Encode a value with the shortest encoding of each item.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write(&mut out, value);
    out
}

fn write_len(out: &mut Vec<u8>, len: usize, markers: [u8; 3]) {
    if len < 0x100 && markers[0] != 0 {
        out.push(markers[0]);
        out.push(len as u8);
    } else if len < 0x10000 {
        out.push(markers[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn write_uint(out: &mut Vec<u8>, u: u64) {
    if u < 0x80 {
        out.push(u as u8);
    } else if u < 0x100 {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u < 0x10000 {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u < 0x1_0000_0000 {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_uint(out, i as u64);
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

/// Append the encoding of a string (used by the reaction writer without building a `Value`).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
    } else {
        write_len(out, s.len(), [0xd9, 0xda, 0xdb]);
    }
    out.extend_from_slice(s.as_bytes());
}

/// Append a map header for `len` entries.
pub fn write_map_header(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else {
        write_len(out, len, [0, 0xde, 0xdf]);
    }
}

/// Append the encoding of any value.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => write_uint(out, *u),
        Value::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => {
            write_len(out, b.len(), [0xc4, 0xc5, 0xc6]);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            if items.len() < 16 {
                out.push(0x90 | items.len() as u8);
            } else {
                write_len(out, items.len(), [0, 0xdc, 0xdd]);
            }
            for item in items {
                write(out, item);
            }
        }
        Value::Map(entries) => {
            write_map_header(out, entries.len());
            for (k, v) in entries {
                write(out, k);
                write(out, v);
            }
        }
        Value::Ext(kind, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n => write_len(out, n, [0xc7, 0xc8, 0xc9]),
            }
            out.push(*kind as u8);
            out.extend_from_slice(data);
        }
    }
}
