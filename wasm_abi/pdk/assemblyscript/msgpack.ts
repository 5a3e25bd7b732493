// A small msgpack reader and writer covering every type and width, so the kit needs no other npm
// package at run time. Writing always picks the shortest encoding. Strings are validated UTF-8.

import { Entry, Kind, Value } from "./value";

/** Nesting deeper than this is refused rather than exhausting the Wasm stack. */
const MAX_DEPTH: i32 = 512;

/** Decoding result: `error` is "" on success, otherwise says what was wrong and at which byte. */
export class Decoded {
  constructor(public value: Value, public error: string) {}
  get ok(): bool {
    return this.error.length == 0;
  }
}

/** Decode exactly one value from `len` bytes at `ptr` (linear memory); trailing bytes are an error. */
export function decodeRaw(ptr: usize, len: i32): Decoded {
  const r = new Reader(ptr, len);
  const v = r.value(0);
  if (r.error.length == 0 && r.pos != len) r.fail((len - r.pos).toString() + " trailing bytes after the value");
  return new Decoded(v, r.error);
}

/** Decode exactly one value from a byte array. */
export function decode(bytes: Uint8Array): Decoded {
  return decodeRaw(bytes.dataStart, bytes.length);
}

class Reader {
  pos: i32 = 0;
  error: string = "";
  constructor(public base: usize, public len: i32) {}

  fail(message: string): Value {
    if (this.error.length == 0) this.error = "invalid msgpack at byte " + this.pos.toString() + ": " + message;
    return new Value();
  }

  /** Check that n bytes remain, advancing past them; answers the start offset or -1. */
  take(n: i64): i32 {
    if (n < 0 || <i64>(this.len - this.pos) < n) {
      this.fail("truncated: need " + n.toString() + " bytes, " + (this.len - this.pos).toString() + " left");
      return -1;
    }
    const start = this.pos;
    this.pos += <i32>n;
    return start;
  }

  byteAt(offset: i32): u8 {
    return load<u8>(this.base + <usize>offset);
  }

  uint(width: i32): u64 {
    const start = this.take(width);
    if (start < 0) return 0;
    let u: u64 = 0;
    for (let i = 0; i < width; i++) u = (u << 8) | <u64>this.byteAt(start + i);
    return u;
  }

  bytes(n: i64): Uint8Array {
    const start = this.take(n);
    if (start < 0) return new Uint8Array(0);
    const out = new Uint8Array(<i32>n);
    memory.copy(out.dataStart, this.base + <usize>start, <usize>n);
    return out;
  }

  value(depth: i32): Value {
    if (this.error.length > 0) return new Value();
    if (depth > MAX_DEPTH) return this.fail("nested deeper than " + MAX_DEPTH.toString());
    const at = this.take(1);
    if (at < 0) return new Value();
    const m = this.byteAt(at);
    if (m <= 0x7f) return Value.int(<i64>m);
    if (m <= 0x8f) return this.mapOf(<i64>(m & 0x0f), depth);
    if (m <= 0x9f) return this.arrayOf(<i64>(m & 0x0f), depth);
    if (m <= 0xbf) return this.str(<i64>(m & 0x1f));
    if (m >= 0xe0) return Value.int(<i64>(<i8>m));
    switch (m) {
      case 0xc0:
        return Value.nil();
      case 0xc2:
        return Value.bool(false);
      case 0xc3:
        return Value.bool(true);
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = this.uint(1 << (m - 0xc4));
        return Value.binary(this.bytes(<i64>n));
      }
      case 0xc7:
      case 0xc8:
      case 0xc9:
        return this.ext(<i64>this.uint(1 << (m - 0xc7)));
      case 0xca:
        return Value.float32(reinterpret<f32>(<u32>this.uint(4)));
      case 0xcb:
        return Value.float64(reinterpret<f64>(this.uint(8)));
      case 0xcc:
      case 0xcd:
      case 0xce:
      case 0xcf:
        return Value.uint(this.uint(1 << (m - 0xcc)));
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3: {
        const width = 1 << (m - 0xd0);
        const shift = <u64>(64 - 8 * width);
        return Value.int(<i64>(this.uint(width) << shift) >> shift);
      }
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return this.ext(<i64>(1 << (m - 0xd4)));
      case 0xd9:
      case 0xda:
      case 0xdb:
        return this.str(<i64>this.uint(1 << (m - 0xd9)));
      case 0xdc:
      case 0xdd:
        return this.arrayOf(<i64>this.uint(2 << (m - 0xdc)), depth);
      case 0xde:
      case 0xdf:
        return this.mapOf(<i64>this.uint(2 << (m - 0xde)), depth);
    }
    this.pos--;
    return this.fail("byte 0xc1 is never used in msgpack");
  }

  str(n: i64): Value {
    const start = this.take(n);
    if (start < 0) return new Value();
    const bad = invalidUtf8At(this.base + <usize>start, <i32>n);
    if (bad >= 0) {
      this.pos = start + bad;
      return this.fail("str is not valid UTF-8");
    }
    return Value.string(String.UTF8.decodeUnsafe(this.base + <usize>start, <usize>n));
  }

  ext(n: i64): Value {
    const at = this.take(1);
    if (at < 0) return new Value();
    const type = <i8>this.byteAt(at);
    return Value.ext(type, this.bytes(n));
  }

  arrayOf(n: i64, depth: i32): Value {
    // Items are pushed one by one, so a count larger than the input allocates nothing: the first
    // missing item stops the loop as truncated.
    const items = new Array<Value>(0);
    for (let i: i64 = 0; i < n && this.error.length == 0; i++) items.push(this.value(depth + 1));
    return Value.array(items);
  }

  mapOf(n: i64, depth: i32): Value {
    const entries = new Array<Entry>(0);
    for (let i: i64 = 0; i < n && this.error.length == 0; i++) {
      const k = this.value(depth + 1);
      const v = this.value(depth + 1);
      entries.push(new Entry(k, v));
    }
    return Value.map(entries);
  }
}

/** Offset of the first byte of an invalid UTF-8 sequence, or -1 when the text is valid. */
function invalidUtf8At(ptr: usize, len: i32): i32 {
  let i = 0;
  while (i < len) {
    const c = <u32>load<u8>(ptr + <usize>i);
    if (c < 0x80) {
      i++;
      continue;
    }
    let need = 0;
    let min: u32 = 0;
    let cp: u32 = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + need >= len) return i;
    for (let k = 1; k <= need; k++) {
      const cc = <u32>load<u8>(ptr + <usize>(i + k));
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** A growable byte buffer for the encoder. */
export class Writer {
  buf: Uint8Array = new Uint8Array(64);
  len: i32 = 0;

  private reserve(n: i32): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const bigger = new Uint8Array(size);
    memory.copy(bigger.dataStart, this.buf.dataStart, <usize>this.len);
    this.buf = bigger;
  }

  byte(b: u32): void {
    this.reserve(1);
    this.buf[this.len++] = <u8>b;
  }

  /** Big-endian, `width` bytes. */
  be(u: u64, width: i32): void {
    this.reserve(width);
    for (let i = width - 1; i >= 0; i--) this.buf[this.len++] = <u8>(u >> (<u64>(8 * i)));
  }

  raw(ptr: usize, n: i32): void {
    this.reserve(n);
    memory.copy(this.buf.dataStart + <usize>this.len, ptr, <usize>n);
    this.len += n;
  }

  /** The bytes written so far, as their own buffer. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  lenHeader(n: i32, m8: u32, m16: u32, m32: u32): void {
    if (n < 0x100 && m8 != 0) {
      this.byte(m8);
      this.byte(<u32>n);
    } else if (n < 0x10000) {
      this.byte(m16);
      this.be(<u64>n, 2);
    } else {
      this.byte(m32);
      this.be(<u64>n, 4);
    }
  }

  uint(u: u64): void {
    if (u < 0x80) this.byte(<u32>u);
    else if (u < 0x100) {
      this.byte(0xcc);
      this.be(u, 1);
    } else if (u < 0x10000) {
      this.byte(0xcd);
      this.be(u, 2);
    } else if (u < 0x100000000) {
      this.byte(0xce);
      this.be(u, 4);
    } else {
      this.byte(0xcf);
      this.be(u, 8);
    }
  }

  int(i: i64): void {
    if (i >= 0) this.uint(<u64>i);
    else if (i >= -32) this.byte(<u32>(<u8>i));
    else if (i >= -128) {
      this.byte(0xd0);
      this.be(<u64>i, 1);
    } else if (i >= -32768) {
      this.byte(0xd1);
      this.be(<u64>i, 2);
    } else if (i >= -2147483648) {
      this.byte(0xd2);
      this.be(<u64>i, 4);
    } else {
      this.byte(0xd3);
      this.be(<u64>i, 8);
    }
  }

  string(s: string): void {
    const utf8 = String.UTF8.encode(s);
    const n = utf8.byteLength;
    if (n < 32) this.byte(0xa0 | <u32>n);
    else this.lenHeader(n, 0xd9, 0xda, 0xdb);
    this.raw(changetype<usize>(utf8), n);
  }

  mapHeader(n: i32): void {
    if (n < 16) this.byte(0x80 | <u32>n);
    else this.lenHeader(n, 0, 0xde, 0xdf);
  }

  arrayHeader(n: i32): void {
    if (n < 16) this.byte(0x90 | <u32>n);
    else this.lenHeader(n, 0, 0xdc, 0xdd);
  }

  value(v: Value): void {
    switch (v.kind) {
      case Kind.Nil:
        this.byte(0xc0);
        break;
      case Kind.Bool:
        this.byte(v.bits == 1 ? 0xc3 : 0xc2);
        break;
      case Kind.Int:
        this.int(<i64>v.bits);
        break;
      case Kind.Uint:
        this.uint(v.bits);
        break;
      case Kind.Float32:
        this.byte(0xca);
        this.be(v.bits, 4);
        break;
      case Kind.Float64:
        this.byte(0xcb);
        this.be(v.bits, 8);
        break;
      case Kind.String:
        this.string(v.str);
        break;
      case Kind.Binary:
        this.lenHeader(v.bytes.length, 0xc4, 0xc5, 0xc6);
        this.raw(v.bytes.dataStart, v.bytes.length);
        break;
      case Kind.Array:
        this.arrayHeader(v.items.length);
        for (let i = 0; i < v.items.length; i++) this.value(v.items[i]);
        break;
      case Kind.Map:
        this.mapHeader(v.entries.length);
        for (let i = 0; i < v.entries.length; i++) {
          this.value(v.entries[i].key);
          this.value(v.entries[i].value);
        }
        break;
      case Kind.Ext: {
        const n = v.bytes.length;
        if (n == 1) this.byte(0xd4);
        else if (n == 2) this.byte(0xd5);
        else if (n == 4) this.byte(0xd6);
        else if (n == 8) this.byte(0xd7);
        else if (n == 16) this.byte(0xd8);
        else this.lenHeader(n, 0xc7, 0xc8, 0xc9);
        this.byte(<u32>(<u8>v.extType));
        this.raw(v.bytes.dataStart, n);
        break;
      }
    }
  }
}

/** Encode a value with the shortest encoding of each item. */
export function encode(v: Value): Uint8Array {
  const w = new Writer();
  w.value(v);
  return w.finish();
}
