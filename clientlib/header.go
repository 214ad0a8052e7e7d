package clientlib

import (
	"fmt"
	"slices"

	"github.com/busd/busd/bus/wire"
)

// Header is a message's headers: key/value fields in the order they were
// added or arrived in, as the protocol carries them (docs/PROTOCOL.md,
// "Headers section"). A key may appear more than once, and where its
// fields stand among the others is kept too.
//
// It is an ordered list rather than a map of keys to values (as
// http.Header is) because the wire keeps that order: a map would lose
// where a repeated key stood among the other keys, so what a subscriber
// sees or forwards would differ from what was sent. Messages carry a few
// headers, so a look-up scanning the list is as fast as hashing a key;
// and decoding a received message's headers into one slice costs fewer
// allocations than building a map.
//
// Keys are compared exactly: unlike HTTP, the bus does not fold case, so
// "trace" and "Trace" are different keys. A key is 1 to 255 visible ASCII
// bytes (0x21-0x7e); a value is any bytes, shorter than 64 KiB. Publishing
// checks both.
//
// A nil Header is empty and ready to use: Add, Set and Del have pointer
// receivers, so
//
//	m := &clientlib.Msg{Topic: "jobs.build", Data: data}
//	m.Header.Add("trace", "42")
//
// builds a message with a header. Publishing only reads a Header, so one
// may be shared by many messages; but Add can write into the array a
// shared Header uses, so Clone it before adding to a copy.
type Header []HeaderField

// HeaderField is one key/value field of a Header.
type HeaderField struct {
	Key, Value string
}

// HeaderOf returns the Header of the given key/value pairs, in order:
// HeaderOf("a", "1", "a", "2") has two fields with key "a". It panics if
// kv has an odd length, as that is a mistake in the code calling it.
func HeaderOf(kv ...string) Header {
	if len(kv)%2 != 0 {
		panic(fmt.Sprintf("clientlib.HeaderOf: %d strings, not key/value pairs", len(kv)))
	}
	h := make(Header, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		h = append(h, HeaderField{kv[i], kv[i+1]})
	}
	return h
}

// Get returns the value of the first field with key, or "" if there is
// none. Lookup tells an empty value from a missing key; Values returns
// every value of a repeated key.
func (h Header) Get(key string) string {
	v, _ := h.Lookup(key)
	return v
}

// Lookup returns the value of the first field with key, and whether there
// is one.
func (h Header) Lookup(key string) (string, bool) {
	for _, f := range h {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Values returns the values of every field with key, in order, or nil if
// there is none.
func (h Header) Values(key string) []string {
	var vs []string
	for _, f := range h {
		if f.Key == key {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Add appends a field, after any with the same key.
func (h *Header) Add(key, value string) {
	*h = append(*h, HeaderField{key, value})
}

// Set makes value the only value of key: the first field with key takes
// it, in its place, and any later fields with key are removed. Without
// one, Set appends a field, as Add does.
func (h *Header) Set(key, value string) {
	i := slices.IndexFunc(*h, func(f HeaderField) bool { return f.Key == key })
	if i < 0 {
		h.Add(key, value)
		return
	}
	(*h)[i].Value = value
	rest := slices.DeleteFunc((*h)[i+1:], func(f HeaderField) bool { return f.Key == key }) // in place
	*h = (*h)[:i+1+len(rest)]
}

// Del removes every field with key.
func (h *Header) Del(key string) {
	*h = slices.DeleteFunc(*h, func(f HeaderField) bool { return f.Key == key })
}

// Clone returns a copy of h that shares no array with it, or nil if h is
// empty.
func (h Header) Clone() Header {
	if len(h) == 0 {
		return nil
	}
	return slices.Clone(h)
}

// encodeHeader appends h's fields, in order, to buf as a headers section,
// checking each first: the wire gives a value two bytes of length, so a
// longer one would corrupt the frame rather than fail. The checks look at
// h, never at buf, so that buf may be on the caller's stack.
func encodeHeader(buf wire.Headers, h Header) (wire.Headers, error) {
	for i, f := range h {
		if !wire.ValidKey(f.Key) {
			return nil, wire.Errorf(wire.CodeBadHeaders, "header %d: key %q is not 1 to %d bytes of visible ASCII",
				i+1, f.Key, wire.MaxKeyLen)
		}
		if len(f.Value) > 0xffff {
			return nil, fmt.Errorf("%w: header %q has a value of %d bytes; values are shorter than 64 KiB",
				ErrTooLarge, f.Key, len(f.Value))
		}
		buf = wire.AppendField(buf, f.Key, f.Value)
	}
	return buf, nil
}

// decodeHeader returns the fields of a received headers section, or nil if
// it has none: a message without headers costs no allocation. The keys and
// values are substrings of one copy of the section, so a message's headers
// cost two allocations however many fields it has.
func decodeHeader(hdrs wire.Headers) Header {
	if len(hdrs) == 0 {
		return nil
	}
	n := 0
	for range hdrs.All() {
		n++
	}
	s := string(hdrs)
	h := make(Header, 0, n)
	for k, v := range hdrs.All() {
		// k and v are views into hdrs; a view's offset in it is what its
		// capacity lacks of hdrs's, and the same offset in s is its copy.
		ko, vo := cap(hdrs)-cap(k), cap(hdrs)-cap(v)
		h = append(h, HeaderField{s[ko : ko+len(k)], s[vo : vo+len(v)]})
	}
	return h
}
