package wire

import (
	"bytes"
	"slices"
)

// MaxNameLen is the longest client name a HELLO may carry, in bytes: a
// name is for the broker's logs, and a log line should not carry more.
const MaxNameLen = 255

// DecodeHello decodes a HELLO payload and holds it to the rules of
// docs/PROTOCOL.md section 4: exactly one msgpack map and nothing after
// it; keys of type str (not bin), none twice; "version" present, an
// integer that is not negative (in any integer encoding); "name", if
// present, a str of at most MaxNameLen bytes; "fd_payloads", if present,
// a bool. Other keys are ignored
// whatever their values, which must be well-formed msgpack. A payload that
// breaks a rule is an *Error with CodeBadFrame naming the rule. The
// version is not compared with Version: that is the broker's to refuse.
//
// The rules close what a decoder could read in two ways: two "version"
// keys, say, which one implementation takes the first of and another the
// last, or a nil version that one reads as 0 and another refuses.
func DecodeHello(b []byte) (Hello, error) {
	var h Hello
	m, ok := readHead(b)
	switch {
	case len(b) == 0:
		return h, helloErr("payload is empty; it must be a msgpack map")
	case !ok:
		return h, helloErr("payload is not well-formed msgpack")
	case m.kind != mpMap:
		return h, helloErr("payload is a msgpack %v; it must be a map", m.kind)
	}
	off := m.head
	var keys []span // to find a key given twice, once all are known
	version := false
	for i := uint64(1); i <= m.v; i++ {
		k, ok := readHead(b[off:])
		if !ok || k.data > uint64(len(b)-off-k.head) {
			return h, helloErr("payload ends inside key %d of its map", i)
		}
		if k.kind != mpStr {
			return h, helloErr("key %d is a msgpack %v; keys must be str", i, k.kind)
		}
		key := span{off + k.head, off + k.head + int(k.data)}
		keys = append(keys, key)
		off = key.end
		v, ok := readHead(b[off:])
		if !ok || v.data > uint64(len(b)-off-v.head) {
			return h, helloErr("payload ends inside the value of key %q", key.of(b))
		}
		switch string(key.of(b)) {
		case "version":
			if v.kind != mpUint {
				return h, helloErr("version is a msgpack %v; it must be an integer that is not negative", v.kind)
			}
			h.Version, version = v.v, true
		case "name":
			switch {
			case v.kind != mpStr:
				return h, helloErr("name is a msgpack %v; it must be a str", v.kind)
			case v.data > MaxNameLen:
				return h, helloErr("name is %d bytes; the limit is %d", v.data, MaxNameLen)
			}
			h.Name = string(b[off+v.head : off+v.head+int(v.data)])
		case "fd_payloads":
			if v.kind != mpBool {
				return h, helloErr("fd_payloads is a msgpack %v; it must be a bool", v.kind)
			}
			h.FDPayloads = b[off] == 0xc3
		default:
			n, ok := skipValue(b[off:])
			if !ok {
				return h, helloErr("value of key %q is not well-formed msgpack", key.of(b))
			}
			off += n
			continue
		}
		off += v.head + int(v.data)
	}
	if off != len(b) {
		return h, helloErr("payload goes on for %d bytes after its map; it must be the map alone", len(b)-off)
	}
	slices.SortFunc(keys, func(x, y span) int { return bytes.Compare(x.of(b), y.of(b)) })
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(keys[i-1].of(b), keys[i].of(b)) {
			return h, helloErr("has the key %q twice", keys[i].of(b))
		}
	}
	if !version {
		return h, helloErr("has no version")
	}
	return h, nil
}

// span is where a key lies in the payload.
type span struct{ start, end int }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

func helloErr(format string, args ...any) *Error {
	return Errorf(CodeBadFrame, "HELLO "+format, args...)
}
