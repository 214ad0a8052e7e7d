package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/busd/busd/clientlib"
)

// headerFlag collects -H key=value flags into a header, in the order
// given. A key given twice is sent twice, as the protocol allows: -H a=1
// -H a=2 sends both fields, a=1 first.
type headerFlag struct{ h clientlib.Header }

func (f *headerFlag) String() string { return fmt.Sprint(f.h) }

func (f *headerFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("header %q: want key=value with a non-empty key", kv)
	}
	f.h.Add(k, v)
	return nil
}

// outgoing holds what pub and req share about the messages they send: the
// -H headers, and -json, which makes each payload JSON to send as msgpack.
type outgoing struct {
	header headerFlag
	json   bool
}

// register adds -H and -json to fs; jsonUsage says what -json does.
func (o *outgoing) register(fs *flag.FlagSet, jsonUsage string) {
	fs.Var(&o.header, "H", "add header `key=value` to what is sent (repeatable)")
	fs.BoolVar(&o.json, "json", false, jsonUsage+"; the JSON is sent as msgpack with header "+
		clientlib.ContentTypeHeader+": "+clientlib.ContentTypeMsgpack)
}

// prepare checks the flags together, once, before any message is built.
// The content type joins the -H headers here rather than per message, since
// every message shares the one header (publishing only reads it).
func (o *outgoing) prepare() error {
	if !o.json {
		return nil
	}
	if _, ok := o.header.h.Lookup(clientlib.ContentTypeHeader); ok {
		return fmt.Errorf("-H %s: -json sets that header", clientlib.ContentTypeHeader)
	}
	o.header.h.Add(clientlib.ContentTypeHeader, clientlib.ContentTypeMsgpack)
	return nil
}

// message returns the message carrying data to topic.
func (o *outgoing) message(topic string, data []byte) (*clientlib.Msg, error) {
	if o.json {
		v, err := parseJSON(data)
		if err != nil {
			return nil, err
		}
		if data, err = clientlib.EncodeValue(v); err != nil {
			return nil, err
		}
	}
	return &clientlib.Msg{Topic: topic, Header: o.header.h, Data: data}, nil
}
