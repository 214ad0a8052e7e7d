package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeConnRequest(t *testing.T) {
	good, err := AppendBody(nil, &ConnRequest{ConnID: 7})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
		want    uint64
		reason  string // "" for a valid request
	}{
		{"encoded by AppendBody", good, 7, ""},
		{"fixint", []byte("\x81\xa7conn_id\x05"), 5, ""},
		{"int64 encoding of a positive value", []byte("\x81\xa7conn_id\xd3\x00\x00\x00\x00\x00\x00\x00\x09"), 9, ""},
		{"uint64", []byte("\x81\xa7conn_id\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), 1<<64 - 1, ""},
		{"zero", []byte("\x81\xa7conn_id\x00"), 0, ""},
		{"unknown keys ignored", []byte("\x82\xa1x\xc0\xa7conn_id\x03"), 3, ""},
		{"empty", nil, 0, "empty"},
		{"too large", append([]byte{0xde, 0, 0}, make([]byte, MaxSysReqPayload)...), 0, "at most"},
		{"array", []byte("\x91\x05"), 0, "not a msgpack map"},
		{"string", []byte("\xa15"), 0, "not a msgpack map"},
		{"no conn_id", []byte("\x80"), 0, `no "conn_id"`},
		{"nil conn_id", []byte("\x81\xa7conn_id\xc0"), 0, `no "conn_id"`},
		{"negative", []byte("\x81\xa7conn_id\xff"), 0, "malformed"},
		{"string conn_id", []byte("\x81\xa7conn_id\xa15"), 0, "malformed"},
		{"truncated", []byte("\x81\xa7conn_id\xcf\x00"), 0, "malformed"},
		{"trailing bytes", []byte("\x81\xa7conn_id\x05\x00\x00"), 0, "2 bytes follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeConnRequest(tt.payload)
			if tt.reason == "" {
				if err != nil || req.ConnID != tt.want {
					t.Fatalf("got %d, %v; want %d", req.ConnID, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("got %d, %v; want ErrBadRequest saying %q", req.ConnID, err, tt.reason)
			}
		})
	}
}

// The answer's keys are the ones docs/PROTOCOL.md lists, as a map.
func TestConnInfoEncoding(t *testing.T) {
	b, err := AppendBody(nil, &ConnInfo{ConnID: 1, PID: 2, UID: 3, GID: 4, Name: "n", Since: 5})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := DecodeBody(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"conn_id", "pid", "uid", "gid", "name", "since"} {
		if _, ok := m[k]; !ok {
			t.Errorf("the encoded ConnInfo has no %q: %v", k, m)
		}
	}
	if len(m) != 6 {
		t.Errorf("the encoded ConnInfo has %d keys: %v", len(m), m)
	}
}
