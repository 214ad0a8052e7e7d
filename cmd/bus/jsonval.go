package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/busd/busd/clientlib"
)

// parseJSON decodes one JSON value for sending as msgpack. Numbers keep
// their kind: an integer becomes an int64 (a uint64 above MaxInt64), so
// that 1 comes back as 1 and not 1.0, and anything else a float64.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if err == io.EOF {
			return nil, errors.New("invalid JSON: no value")
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("invalid JSON: more after the value at offset %d", dec.InputOffset())
	}
	return exactNumbers(v)
}

// exactNumbers replaces every json.Number in v, in place where v nests.
func exactNumbers(v any) (any, error) {
	var err error
	switch v := v.(type) {
	case json.Number:
		return number(string(v))
	case map[string]any:
		for k, e := range v {
			if v[k], err = exactNumbers(e); err != nil {
				return nil, err
			}
		}
	case []any:
		for i, e := range v {
			if v[i], err = exactNumbers(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

func number(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return u, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		// JSON cannot show an infinity, so it could not come back.
		return nil, fmt.Errorf("invalid JSON: number %s is out of range", s)
	}
	return f, nil
}

// jsonPrinter shows payloads, or whole messages, as JSON, one line each:
// msgpack payloads decoded, others as a string. Compact, with the keys of
// decoded maps sorted, and without HTML escapes, which only matter to
// browsers and make shell output harder to read and grep.
type jsonPrinter struct {
	buf  bytes.Buffer
	enc  *json.Encoder
	warn io.Writer
}

func newJSONPrinter(warn io.Writer) *jsonPrinter {
	p := &jsonPrinter{warn: warn}
	p.enc = json.NewEncoder(&p.buf)
	p.enc.SetEscapeHTML(false)
	return p
}

// line returns m's payload as a line of JSON, valid until the next call. A
// msgpack payload that cannot be decoded, or decodes to something JSON
// cannot hold (a NaN), is warned about and shown as other payloads are.
func (p *jsonPrinter) line(m *clientlib.Msg) []byte {
	if v, ok := p.decoded(m); ok {
		err := p.encode(v)
		if err == nil {
			return p.buf.Bytes()
		}
		p.showingBytes(m, err)
	}
	p.encode(bytesAsText(m.Data)) // a string or []byte always encodes
	return p.buf.Bytes()
}

// jsonMsg is what sub -json prints of a message: the shape the package
// doc describes. Exactly one of Value, Text and Base64 is set.
type jsonMsg struct {
	Topic   string      `json:"topic"`
	Origin  jsonOrigin  `json:"origin"`
	Reply   string      `json:"reply,omitempty"`
	Headers [][2]string `json:"headers,omitempty"` // pairs, not an object: keys repeat, and order counts
	FDs     int         `json:"fds,omitempty"`
	Value   *any        `json:"value,omitempty"` // a pointer, so that a msgpack nil shows as null
	Text    *string     `json:"text,omitempty"`
	Base64  []byte      `json:"base64,omitempty"` // encoding/json writes a []byte as base64

	// Retained marks a value the bus retained, shown before the updates (sub -retained).
	Retained bool `json:"retained,omitempty"`
}

type jsonOrigin struct {
	Conn uint64 `json:"conn"`
	PID  int    `json:"pid"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// message returns m as a line of JSON, a jsonMsg, valid until the next
// call. Its payload is shown as line shows it, in the field that says how.
func (p *jsonPrinter) message(m *clientlib.Msg) []byte { return p.messageFDs(m, len(m.Files)) }

// messageFDs is message for a message that carried nfds files, which a
// monitor is told of but does not get.
func (p *jsonPrinter) messageFDs(m *clientlib.Msg, nfds int) []byte {
	o := jsonMsg{
		Topic:  m.Topic,
		Origin: jsonOrigin{Conn: m.Origin.Conn, PID: m.Origin.PID, UID: m.Origin.UID, GID: m.Origin.GID},
		Reply:  m.Reply,
		FDs:    nfds,

		Retained: m.Retained(),
	}
	for _, f := range m.Header {
		o.Headers = append(o.Headers, [2]string{f.Key, f.Value})
	}
	if v, ok := p.decoded(m); ok {
		o.Value = &v
		err := p.encode(o)
		if err == nil {
			return p.buf.Bytes()
		}
		p.showingBytes(m, err)
		o.Value = nil
	}
	if utf8.Valid(m.Data) {
		text := string(m.Data)
		o.Text = &text
	} else {
		o.Base64 = m.Data
	}
	p.encode(o) // strings, numbers and bytes: it always encodes
	return p.buf.Bytes()
}

// decoded returns m's payload decoded, if m says it is msgpack and it is.
// One that says so and is not is warned about.
func (p *jsonPrinter) decoded(m *clientlib.Msg) (any, bool) {
	if !m.IsValue() {
		return nil, false
	}
	var v any
	if err := clientlib.DecodeValue(m.Data, &v); err != nil {
		p.showingBytes(m, err)
		return nil, false
	}
	return bytesAsText(v), true
}

// showingBytes warns that m's msgpack payload is shown as bytes, and why.
func (p *jsonPrinter) showingBytes(m *clientlib.Msg, err error) {
	fmt.Fprintf(p.warn, "bus: %s: showing the payload as bytes: %v\n", m.Topic, err)
}

func (p *jsonPrinter) encode(v any) error {
	p.buf.Reset()
	return p.enc.Encode(v)
}

// bytesAsText turns byte strings in v that are UTF-8 into strings, which
// JSON shows as text rather than base64. msgpack bin is how many clients
// send text, so this is what a reader wants to see.
func bytesAsText(v any) any {
	switch v := v.(type) {
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = bytesAsText(e)
		}
	case []any:
		for i, e := range v {
			v[i] = bytesAsText(e)
		}
	}
	return v
}
