package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/busd/busd/clientlib"
)

// headerFlag collects -H key=value flags. A key given twice keeps its last
// value, as a later flag overrides an earlier one.
type headerFlag map[string]string

func (h *headerFlag) String() string { return fmt.Sprint(map[string]string(*h)) }

func (h *headerFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("header %q: want key=value with a non-empty key", kv)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	(*h)[k] = v
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
// every message shares the one header map (publishing only reads it).
func (o *outgoing) prepare() error {
	if !o.json {
		return nil
	}
	if _, ok := o.header[clientlib.ContentTypeHeader]; ok {
		return fmt.Errorf("-H %s: -json sets that header", clientlib.ContentTypeHeader)
	}
	if o.header == nil {
		o.header = headerFlag{}
	}
	o.header[clientlib.ContentTypeHeader] = clientlib.ContentTypeMsgpack
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
	return &clientlib.Msg{Topic: topic, Header: o.header, Data: data}, nil
}
