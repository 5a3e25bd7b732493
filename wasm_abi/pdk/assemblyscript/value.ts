// The msgpack data model as one class, so a plugin reads an event with chained calls
// (event.incoming().data().get("user").asString()) that never trap: a missing key or a wrong type
// gives the nil Value, or a default plus `false` from the is*() checks.

export enum Kind {
  Nil,
  Bool,
  /** Every integer that fits an i64 (negative ones always do). */
  Int,
  /** Only integers above i64.MAX_VALUE. */
  Uint,
  Float32,
  Float64,
  String,
  Binary,
  Array,
  Map,
  /** Extension types, timestamps (-1) included, kept as raw bytes. */
  Ext,
}

const KIND_NAMES: string[] = ["nil", "bool", "int", "int", "float", "float", "str", "bin", "array", "map", "ext"];

/** One key/value pair of a map; maps keep their wire order. */
export class Entry {
  constructor(public key: Value, public value: Value) {}
}

// Shared empty storage for the fields a Value of another kind does not use: a fresh Uint8Array and two
// arrays per Value made decoding cost ~7 allocations per scalar (about 5,000 fuel per array item), so a
// few thousand values in an event ran a sync reaction out of fuel. Only Value.array/map/binary/ext and
// the decoder give a Value storage of its own; never push into `items`/`entries` directly (use `set`).
const NO_BYTES = new Uint8Array(0);
const NO_ITEMS: Value[] = [];
const NO_ENTRIES: Entry[] = [];

export class Value {
  kind: Kind = Kind.Nil;
  /** bool (0/1), int (two's complement), uint, float bits */
  bits: u64 = 0;
  str: string = "";
  bytes: Uint8Array = NO_BYTES;
  items: Value[] = NO_ITEMS;
  entries: Entry[] = NO_ENTRIES;
  extType: i8 = 0;

  static nil(): Value {
    return new Value();
  }

  static bool(b: bool): Value {
    const v = new Value();
    v.kind = Kind.Bool;
    v.bits = b ? 1 : 0;
    return v;
  }

  static int(i: i64): Value {
    const v = new Value();
    v.kind = Kind.Int;
    v.bits = <u64>i;
    return v;
  }

  /** An unsigned integer; values up to i64.MAX_VALUE are stored as Kind.Int, like decoded ones. */
  static uint(u: u64): Value {
    const v = new Value();
    v.kind = u <= <u64>i64.MAX_VALUE ? Kind.Int : Kind.Uint;
    v.bits = u;
    return v;
  }

  static float64(f: f64): Value {
    const v = new Value();
    v.kind = Kind.Float64;
    v.bits = reinterpret<u64>(f);
    return v;
  }

  static float32(f: f32): Value {
    const v = new Value();
    v.kind = Kind.Float32;
    v.bits = <u64>reinterpret<u32>(f);
    return v;
  }

  static string(s: string): Value {
    const v = new Value();
    v.kind = Kind.String;
    v.str = s;
    return v;
  }

  static binary(b: Uint8Array): Value {
    const v = new Value();
    v.kind = Kind.Binary;
    v.bytes = b;
    return v;
  }

  static array(items: Value[]): Value {
    const v = new Value();
    v.kind = Kind.Array;
    v.items = items;
    return v;
  }

  static map(entries: Entry[] = []): Value {
    const v = new Value();
    v.kind = Kind.Map;
    v.entries = entries;
    return v;
  }

  static ext(type: i8, data: Uint8Array): Value {
    const v = new Value();
    v.kind = Kind.Ext;
    v.extType = type;
    v.bytes = data;
    return v;
  }

  get typeName(): string {
    return KIND_NAMES[<i32>this.kind];
  }

  isNil(): bool {
    return this.kind == Kind.Nil;
  }
  isBool(): bool {
    return this.kind == Kind.Bool;
  }
  /** True for integers that fit an i64. */
  isInt(): bool {
    return this.kind == Kind.Int;
  }
  isNumber(): bool {
    return this.kind == Kind.Int || this.kind == Kind.Uint || this.kind == Kind.Float32 || this.kind == Kind.Float64;
  }
  isString(): bool {
    return this.kind == Kind.String;
  }
  isBinary(): bool {
    return this.kind == Kind.Binary;
  }
  isArray(): bool {
    return this.kind == Kind.Array;
  }
  isMap(): bool {
    return this.kind == Kind.Map;
  }

  /** The bool, or false. */
  asBool(): bool {
    return this.kind == Kind.Bool && this.bits == 1;
  }

  /** The integer (check isInt() first), or 0. */
  asInt(): i64 {
    return this.kind == Kind.Int ? <i64>this.bits : 0;
  }

  /** The integer as unsigned (Kind.Uint, or a non-negative Kind.Int), or 0. */
  asUint(): u64 {
    if (this.kind == Kind.Uint || (this.kind == Kind.Int && <i64>this.bits >= 0)) return this.bits;
    return 0;
  }

  /** Any number as an f64 (integers convert: JSON-born data mixes the two), or NaN. */
  asFloat(): f64 {
    switch (this.kind) {
      case Kind.Float64:
        return reinterpret<f64>(this.bits);
      case Kind.Float32:
        return <f64>reinterpret<f32>(<u32>this.bits);
      case Kind.Int:
        return <f64>(<i64>this.bits);
      case Kind.Uint:
        return <f64>this.bits;
    }
    return NaN;
  }

  /** The string, or "". */
  asString(): string {
    return this.kind == Kind.String ? this.str : "";
  }

  /** The bytes of a binary (or ext payload), else an empty array. */
  asBytes(): Uint8Array {
    return this.kind == Kind.Binary || this.kind == Kind.Ext ? this.bytes : new Uint8Array(0);
  }

  /** The items of an array, else an empty list. */
  asArray(): Value[] {
    return this.kind == Kind.Array ? this.items : [];
  }

  /** The entries of a map in wire order, else an empty list. */
  asEntries(): Entry[] {
    return this.kind == Kind.Map ? this.entries : [];
  }

  /** Whether a map has a string key. */
  has(key: string): bool {
    return this.indexOfKey(key) >= 0;
  }

  /** The value under a string key of a map, or the nil Value. */
  get(key: string): Value {
    const i = this.indexOfKey(key);
    return i >= 0 ? this.entries[i].value : new Value();
  }

  /** The string under a key, or "". */
  getString(key: string): string {
    return this.get(key).asString();
  }

  /** An array item, or the nil Value when out of range or not an array. */
  at(index: i32): Value {
    if (this.kind != Kind.Array || index < 0 || index >= this.items.length) return new Value();
    return this.items[index];
  }

  /** Number of array items or map entries (bytes for strings are not counted here). */
  get length(): i32 {
    if (this.kind == Kind.Array) return this.items.length;
    if (this.kind == Kind.Map) return this.entries.length;
    if (this.kind == Kind.Binary || this.kind == Kind.Ext) return this.bytes.length;
    return 0;
  }

  /** Set a string key of a map, replacing in place or appending; no-op unless this is a map. */
  set(key: string, value: Value): void {
    if (this.kind != Kind.Map) return;
    const i = this.indexOfKey(key);
    if (i >= 0) this.entries[i].value = value;
    else this.entries.push(new Entry(Value.string(key), value));
  }

  /** A shallow copy whose entries/items can be changed without touching this value. */
  copy(): Value {
    const c = new Value();
    c.kind = this.kind;
    c.bits = this.bits;
    c.str = this.str;
    c.bytes = this.bytes;
    c.extType = this.extType;
    if (this.kind == Kind.Array) c.items = this.items.slice(0);
    if (this.kind == Kind.Map) {
      const entries = new Array<Entry>(0);
      for (let i = 0; i < this.entries.length; i++) {
        entries.push(new Entry(this.entries[i].key, this.entries[i].value));
      }
      c.entries = entries;
    }
    return c;
  }

  private indexOfKey(key: string): i32 {
    if (this.kind != Kind.Map) return -1;
    for (let i = 0; i < this.entries.length; i++) {
      const k = this.entries[i].key;
      if (k.kind == Kind.String && k.str == key) return i;
    }
    return -1;
  }
}
