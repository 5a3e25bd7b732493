package pdk

import "strconv"

// Kind says which msgpack type a Value holds.
type Kind uint8

const (
	KindNil Kind = iota
	KindBool
	KindInt  // every integer that fits an int64 (negative ones always do)
	KindUint // only integers above math.MaxInt64
	KindFloat32
	KindFloat64
	KindString
	KindBinary
	KindArray
	KindMap
	KindExt // extension types, timestamps (-1) included, kept as raw bytes
)

var kindNames = [...]string{"nil", "bool", "int", "int", "float", "float", "str", "bin", "array", "map", "ext"}

// Value is one msgpack value. It is a plain struct rather than an interface{} so that reading an
// event is a chain of method calls (ev.Get("data").Get("user").AsString()) that never panics:
// a missing key or a wrong type gives the nil Value or ok == false.
//
// It is kept small (40 bytes): a decoded event is a tree of Values copied by value, and with a slice
// field per container kind a Value took 112 bytes and decoding ~1,700 fuel per item.
type Value struct {
	kind    Kind
	extType int8
	num     uint64 // bool (0/1), int (two's complement), uint, float bits
	str     string
	box     *payload // arrays, maps, binary and ext payloads; nil for the other kinds
}

// payload holds what only containers and byte values need.
type payload struct {
	bin     []byte // binary and ext payloads
	items   []Value
	entries []Entry
}

func (v Value) bin() []byte {
	if v.box == nil {
		return nil
	}
	return v.box.bin
}

func (v Value) items() []Value {
	if v.box == nil {
		return nil
	}
	return v.box.items
}

func (v Value) entries() []Entry {
	if v.box == nil {
		return nil
	}
	return v.box.entries
}

// Entry is one key/value pair of a map. Maps keep their wire order, because a rewritten event
// should look like the one that came in.
type Entry struct {
	Key   Value
	Value Value
}

func Nil() Value { return Value{} }
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.num = 1
	}
	return v
}
func Int(i int64) Value          { return Value{kind: KindInt, num: uint64(i)} }
func Float64(f float64) Value    { return Value{kind: KindFloat64, num: float64bits(f)} }
func Float32(f float32) Value    { return Value{kind: KindFloat32, num: uint64(float32bits(f))} }
func String(s string) Value      { return Value{kind: KindString, str: s} }
func Bytes(b []byte) Value       { return Value{kind: KindBinary, box: &payload{bin: b}} }
func Array(items ...Value) Value { return Value{kind: KindArray, box: &payload{items: items}} }
func Map(entries ...Entry) Value { return Value{kind: KindMap, box: &payload{entries: entries}} }
func Ext(t int8, b []byte) Value { return Value{kind: KindExt, extType: t, box: &payload{bin: b}} }

// Uint makes an integer value; values up to math.MaxInt64 are stored as KindInt, like decoded ones.
func Uint(u uint64) Value {
	if u <= 1<<63-1 {
		return Value{kind: KindInt, num: u}
	}
	return Value{kind: KindUint, num: u}
}

func (v Value) Kind() Kind       { return v.kind }
func (v Value) IsNil() bool      { return v.kind == KindNil }
func (v Value) IsMap() bool      { return v.kind == KindMap }
func (v Value) TypeName() string { return kindNames[v.kind] }

func (v Value) AsBool() (bool, bool) { return v.num == 1, v.kind == KindBool }

// AsInt gives the integer when it fits an int64.
func (v Value) AsInt() (int64, bool) {
	switch v.kind {
	case KindInt:
		return int64(v.num), true
	}
	return 0, false
}

// AsUint gives the integer when it is not negative.
func (v Value) AsUint() (uint64, bool) {
	switch {
	case v.kind == KindUint, v.kind == KindInt && int64(v.num) >= 0:
		return v.num, true
	}
	return 0, false
}

// AsFloat gives any number as a float64 (integers convert: JSON-born data mixes the two).
func (v Value) AsFloat() (float64, bool) {
	switch v.kind {
	case KindFloat64:
		return float64frombits(v.num), true
	case KindFloat32:
		return float64(float32frombits(uint32(v.num))), true
	case KindInt:
		return float64(int64(v.num)), true
	case KindUint:
		return float64(v.num), true
	}
	return 0, false
}

func (v Value) AsString() (string, bool) { return v.str, v.kind == KindString }
func (v Value) AsBytes() ([]byte, bool)  { return v.bin(), v.kind == KindBinary }
func (v Value) AsArray() ([]Value, bool) { return v.items(), v.kind == KindArray }
func (v Value) Entries() ([]Entry, bool) { return v.entries(), v.kind == KindMap }

// AsExt gives an extension value's type and payload.
func (v Value) AsExt() (int8, []byte, bool) { return v.extType, v.bin(), v.kind == KindExt }

// Lookup finds a string key of a map.
func (v Value) Lookup(key string) (Value, bool) {
	for _, e := range v.entries() {
		if e.Key.kind == KindString && e.Key.str == key {
			return e.Value, true
		}
	}
	return Value{}, false
}

// Get is Lookup that answers the nil Value for a missing key or a non-map.
func (v Value) Get(key string) Value {
	found, _ := v.Lookup(key)
	return found
}

// GetString is Get(key).AsString() with "" for anything that is not a string.
func (v Value) GetString(key string) string {
	s, _ := v.Get(key).AsString()
	return s
}

// Index gives an array element, or the nil Value when out of range or not an array.
func (v Value) Index(i int) Value {
	items := v.items()
	if v.kind != KindArray || i < 0 || i >= len(items) {
		return Value{}
	}
	return items[i]
}

// Len is the number of array items or map entries (bytes for strings and binaries).
func (v Value) Len() int {
	switch v.kind {
	case KindArray:
		return len(v.items())
	case KindMap:
		return len(v.entries())
	case KindString:
		return len(v.str)
	}
	return len(v.bin())
}

// Set replaces a string key's value in place, or appends the entry; no-op unless v is a map.
func (v *Value) Set(key string, value Value) {
	if v.kind != KindMap {
		return
	}
	if v.box == nil {
		v.box = &payload{}
	}
	for i, e := range v.box.entries {
		if e.Key.kind == KindString && e.Key.str == key {
			v.box.entries[i].Value = value
			return
		}
	}
	v.box.entries = append(v.box.entries, Entry{String(key), value})
}

// Copy is a shallow copy whose map entries and array items can be changed without touching v.
// (Plain assignment shares them: Set on an assigned copy changes both.)
func (v Value) Copy() Value {
	c := v
	if v.box != nil {
		c.box = &payload{
			bin:     v.box.bin,
			entries: append([]Entry(nil), v.box.entries...),
			items:   append([]Value(nil), v.box.items...),
		}
	}
	return c
}

// String renders the value for log lines (a JSON-like form, not a msgpack one).
func (v Value) String() string {
	switch v.kind {
	case KindNil:
		return "nil"
	case KindBool:
		return strconv.FormatBool(v.num == 1)
	case KindInt:
		return strconv.FormatInt(int64(v.num), 10)
	case KindUint:
		return strconv.FormatUint(v.num, 10)
	case KindFloat32, KindFloat64:
		f, _ := v.AsFloat()
		return strconv.FormatFloat(f, 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.str)
	case KindArray:
		s := "["
		for i, item := range v.items() {
			if i > 0 {
				s += ", "
			}
			s += item.String()
		}
		return s + "]"
	case KindMap:
		s := "{"
		for i, e := range v.entries() {
			if i > 0 {
				s += ", "
			}
			s += e.Key.String() + ": " + e.Value.String()
		}
		return s + "}"
	}
	return "<" + v.TypeName() + " of " + strconv.Itoa(len(v.bin())) + " bytes>"
}
