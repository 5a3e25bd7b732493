package pdk

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// A small msgpack reader and writer covering every type and width, so the kit needs nothing from
// the Go module proxy. Writing always picks the shortest encoding.

func float64bits(f float64) uint64     { return math.Float64bits(f) }
func float64frombits(b uint64) float64 { return math.Float64frombits(b) }
func float32bits(f float32) uint32     { return math.Float32bits(f) }
func float32frombits(b uint32) float32 { return math.Float32frombits(b) }

// DecodeError says why bytes are not msgpack and at which byte reading stopped.
type DecodeError struct {
	Offset  int
	Message string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("invalid msgpack at byte %d: %s", e.Offset, e.Message)
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 512

// Decode reads exactly one value; trailing bytes are an error.
func Decode(b []byte) (Value, error) {
	r := reader{b: b}
	v, err := r.value(0)
	if err != nil {
		return Value{}, err
	}
	if r.pos != len(b) {
		return Value{}, r.fail(fmt.Sprintf("%d trailing bytes after the value", len(b)-r.pos))
	}
	return v, nil
}

type reader struct {
	b   []byte
	pos int
}

func (r *reader) fail(message string) error { return &DecodeError{r.pos, message} }

func (r *reader) take(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.pos < n {
		return nil, r.fail(fmt.Sprintf("truncated: need %d bytes, %d left", n, len(r.b)-r.pos))
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s, nil
}

func (r *reader) uint(width int) (uint64, error) {
	s, err := r.take(width)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, c := range s {
		u = u<<8 | uint64(c)
	}
	return u, nil
}

func (r *reader) length(width int) (int, error) {
	u, err := r.uint(width)
	return int(u), err
}

func (r *reader) value(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, r.fail(fmt.Sprintf("nested deeper than %d", maxDepth))
	}
	if r.pos >= len(r.b) {
		_, err := r.take(1) // the truncation error
		return Value{}, err
	}
	m := r.b[r.pos]
	r.pos++
	switch {
	case m <= 0x7f:
		return Int(int64(m)), nil
	case m <= 0x8f:
		return r.mapOf(int(m&0x0f), depth)
	case m <= 0x9f:
		return r.arrayOf(int(m&0x0f), depth)
	case m <= 0xbf:
		return r.str(int(m & 0x1f))
	case m >= 0xe0:
		return Int(int64(int8(m))), nil
	}
	switch m {
	case 0xc0:
		return Nil(), nil
	case 0xc2:
		return Bool(false), nil
	case 0xc3:
		return Bool(true), nil
	case 0xc4, 0xc5, 0xc6:
		n, err := r.length(1 << (m - 0xc4))
		if err != nil {
			return Value{}, err
		}
		raw, err := r.take(n)
		return Bytes(append([]byte(nil), raw...)), err
	case 0xc7, 0xc8, 0xc9:
		n, err := r.length(1 << (m - 0xc7))
		if err != nil {
			return Value{}, err
		}
		return r.ext(n)
	case 0xca:
		u, err := r.uint(4)
		return Float32(float32frombits(uint32(u))), err
	case 0xcb:
		u, err := r.uint(8)
		return Float64(float64frombits(u)), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := r.uint(1 << (m - 0xcc))
		return Uint(u), err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		width := 1 << (m - 0xd0)
		u, err := r.uint(width)
		shift := 64 - 8*width
		return Int(int64(u<<shift) >> shift), err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return r.ext(1 << (m - 0xd4))
	case 0xd9, 0xda, 0xdb:
		n, err := r.length(1 << (m - 0xd9))
		if err != nil {
			return Value{}, err
		}
		return r.str(n)
	case 0xdc, 0xdd:
		n, err := r.length(2 << (m - 0xdc))
		if err != nil {
			return Value{}, err
		}
		return r.arrayOf(n, depth)
	case 0xde, 0xdf:
		n, err := r.length(2 << (m - 0xde))
		if err != nil {
			return Value{}, err
		}
		return r.mapOf(n, depth)
	}
	r.pos--
	return Value{}, r.fail("byte 0xc1 is never used in msgpack")
}

func (r *reader) str(n int) (Value, error) {
	start := r.pos
	raw, err := r.take(n)
	if err != nil {
		return Value{}, err
	}
	if !utf8.Valid(raw) {
		return Value{}, &DecodeError{start, "str is not valid UTF-8"}
	}
	return String(string(raw)), nil
}

func (r *reader) ext(n int) (Value, error) {
	t, err := r.take(1)
	if err != nil {
		return Value{}, err
	}
	raw, err := r.take(n)
	return Ext(int8(t[0]), append([]byte(nil), raw...)), err
}

// capacity bounds a preallocation by the bytes left: each item takes at least one.
func (r *reader) capacity(n int) int {
	if left := len(r.b) - r.pos; n > left {
		return left
	}
	return n
}

func (r *reader) arrayOf(n int, depth int) (Value, error) {
	items := make([]Value, 0, r.capacity(n))
	for i := 0; i < n; i++ {
		item, err := r.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		items = append(items, item)
	}
	return Array(items...), nil
}

func (r *reader) mapOf(n int, depth int) (Value, error) {
	entries := make([]Entry, 0, r.capacity(n))
	for i := 0; i < n; i++ {
		k, err := r.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v, err := r.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		entries = append(entries, Entry{k, v})
	}
	return Map(entries...), nil
}

// Encode writes a value with the shortest encoding of each item.
func Encode(v Value) []byte {
	return AppendValue(make([]byte, 0, 64), v)
}

func appendLen(b []byte, n int, m8, m16, m32 byte) []byte {
	switch {
	case n < 0x100 && m8 != 0:
		return append(b, m8, byte(n))
	case n < 0x10000:
		return binary.BigEndian.AppendUint16(append(b, m16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, m32), uint32(n))
}

func appendUint(b []byte, u uint64) []byte {
	switch {
	case u < 0x80:
		return append(b, byte(u))
	case u < 0x100:
		return append(b, 0xcc, byte(u))
	case u < 0x10000:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(u))
	case u < 0x100000000:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(u))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
}

func appendInt(b []byte, i int64) []byte {
	switch {
	case i >= 0:
		return appendUint(b, uint64(i))
	case i >= -32:
		return append(b, byte(i))
	case i >= math.MinInt8:
		return append(b, 0xd0, byte(i))
	case i >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(i))
	case i >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(i))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(i))
}

func appendString(b []byte, s string) []byte {
	if len(s) < 32 {
		b = append(b, 0xa0|byte(len(s)))
	} else {
		b = appendLen(b, len(s), 0xd9, 0xda, 0xdb)
	}
	return append(b, s...)
}

func appendMapHeader(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x80|byte(n))
	}
	return appendLen(b, n, 0, 0xde, 0xdf)
}

// AppendValue appends the encoding of v to b.
func AppendValue(b []byte, v Value) []byte {
	switch v.kind {
	case KindNil:
		return append(b, 0xc0)
	case KindBool:
		return append(b, 0xc2+byte(v.num))
	case KindInt:
		return appendInt(b, int64(v.num))
	case KindUint:
		return appendUint(b, v.num)
	case KindFloat32:
		return binary.BigEndian.AppendUint32(append(b, 0xca), uint32(v.num))
	case KindFloat64:
		return binary.BigEndian.AppendUint64(append(b, 0xcb), v.num)
	case KindString:
		return appendString(b, v.str)
	case KindBinary:
		return append(appendLen(b, len(v.bin()), 0xc4, 0xc5, 0xc6), v.bin()...)
	case KindArray:
		items := v.items()
		if len(items) < 16 {
			b = append(b, 0x90|byte(len(items)))
		} else {
			b = appendLen(b, len(items), 0, 0xdc, 0xdd)
		}
		for _, item := range items {
			b = AppendValue(b, item)
		}
		return b
	case KindMap:
		entries := v.entries()
		b = appendMapHeader(b, len(entries))
		for _, e := range entries {
			b = AppendValue(AppendValue(b, e.Key), e.Value)
		}
		return b
	}
	bin := v.bin()
	switch len(bin) {
	case 1:
		b = append(b, 0xd4)
	case 2:
		b = append(b, 0xd5)
	case 4:
		b = append(b, 0xd6)
	case 8:
		b = append(b, 0xd7)
	case 16:
		b = append(b, 0xd8)
	default:
		b = appendLen(b, len(bin), 0xc7, 0xc8, 0xc9)
	}
	return append(append(b, byte(v.extType)), bin...)
}
