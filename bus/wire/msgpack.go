package wire

import "encoding/binary"

// A small msgpack walker: enough to hold a HELLO to its rules (hello.go)
// byte by byte, which the codec cannot be asked to do (it takes trailing
// bytes, bin keys and duplicate keys). It reads the head of a value and
// skips whole values without recursion, so a hostile payload costs time in
// proportion to its length and no stack.

// mpKind is what a msgpack value is, as far as the walker cares.
type mpKind uint8

const (
	mpNil mpKind = iota
	mpBool
	mpUint   // an integer that is not negative, in any encoding
	mpNegInt // a negative integer
	mpFloat
	mpStr
	mpBin
	mpArray
	mpMap
	mpExt
)

var mpKindNames = [...]string{
	mpNil: "nil", mpBool: "bool", mpUint: "integer", mpNegInt: "negative integer", mpFloat: "float",
	mpStr: "str", mpBin: "bin", mpArray: "array", mpMap: "map", mpExt: "ext",
}

func (k mpKind) String() string { return mpKindNames[k] }

// mpHead is the head of one msgpack value.
type mpHead struct {
	kind mpKind
	v    uint64 // mpUint: the value; mpArray: elements; mpMap: entries
	head int    // bytes of the type byte, lengths, ext type and fixed-size values
	data uint64 // bytes of content after the head: str, bin and ext data
}

// readHead decodes the head of the value b starts with. It reports false
// if b ends inside the head or starts with 0xc1, a byte msgpack never uses.
func readHead(b []byte) (mpHead, bool) {
	if len(b) == 0 {
		return mpHead{}, false
	}
	c := b[0]
	// n is how many bytes after the type byte hold the value, length or
	// count: 1, 2, 4 or 8 by the format's place in its group (bin 8, 16, 32).
	var h mpHead
	var n int
	switch {
	case c <= 0x7f:
		return mpHead{kind: mpUint, v: uint64(c), head: 1}, true
	case c <= 0x8f:
		return mpHead{kind: mpMap, v: uint64(c & 0x0f), head: 1}, true
	case c <= 0x9f:
		return mpHead{kind: mpArray, v: uint64(c & 0x0f), head: 1}, true
	case c <= 0xbf:
		return mpHead{kind: mpStr, data: uint64(c & 0x1f), head: 1}, true
	case c >= 0xe0:
		return mpHead{kind: mpNegInt, head: 1}, true
	case c == 0xc0:
		return mpHead{kind: mpNil, head: 1}, true
	case c == 0xc1:
		return mpHead{}, false
	case c <= 0xc3:
		return mpHead{kind: mpBool, head: 1}, true
	case c <= 0xc6: // bin 8, 16, 32
		h.kind, n = mpBin, 1<<(c-0xc4)
	case c <= 0xc9: // ext 8, 16, 32: the length, then the ext type
		h.kind, n, h.head = mpExt, 1<<(c-0xc7), 1
	case c <= 0xcb: // float 32, 64
		h.kind, h.head = mpFloat, 4<<(c-0xca)
	case c <= 0xcf: // uint 8, 16, 32, 64
		h.kind, n = mpUint, 1<<(c-0xcc)
	case c <= 0xd3: // int 8, 16, 32, 64
		h.kind, n = mpNegInt, 1<<(c-0xd0)
	case c <= 0xd8: // fixext 1, 2, 4, 8, 16: the ext type, then the data
		h.kind, h.head, h.data = mpExt, 1, 1<<(c-0xd4)
	case c <= 0xdb: // str 8, 16, 32
		h.kind, n = mpStr, 1<<(c-0xd9)
	case c <= 0xdd: // array 16, 32
		h.kind, n = mpArray, 2<<(c-0xdc)
	default: // map 16, 32
		h.kind, n = mpMap, 2<<(c-0xde)
	}
	h.head += 1 + n
	if len(b) < h.head {
		return mpHead{}, false
	}
	if n == 0 {
		return h, true
	}
	x := uintN(b[1:], n)
	switch h.kind {
	case mpBin, mpExt, mpStr:
		h.data = x
	case mpNegInt:
		if x>>(8*n-1) == 0 { // a signed encoding of a value that is not negative
			h.kind, h.v = mpUint, x
		}
	default: // mpUint's value, mpArray's and mpMap's count
		h.v = x
	}
	return h, true
}

// uintN reads a big-endian unsigned integer of n bytes (1, 2, 4 or 8).
func uintN(b []byte, n int) uint64 {
	switch n {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	return binary.BigEndian.Uint64(b)
}

// skipValue returns the length of the whole msgpack value b starts with,
// or false if b ends inside it or it is malformed. Containers are walked
// with a count of the values still to skip, not by recursion.
func skipValue(b []byte) (int, bool) {
	off := 0
	for left := uint64(1); left > 0; left-- {
		h, ok := readHead(b[off:])
		if !ok || h.data > uint64(len(b)-off-h.head) {
			return 0, false
		}
		off += h.head + int(h.data)
		switch h.kind {
		case mpArray:
			left += h.v
		case mpMap:
			left += 2 * h.v
		}
	}
	return off, true
}
