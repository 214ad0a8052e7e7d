package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/topics"
)

// sub -o names a file after its message's topic, and a topic may be
// topics.MaxLen (1024) bytes: far over a file name's 255. Anyone allowed
// to publish on a topic the subscriber's pattern matches could end a
// `bus sub -o DIR '>'` with one message on a long topic (ENAMETOOLONG).
// The topic's part of the name is cut short instead, at a character's
// boundary, and the payload is written.
func TestPayloadWriterLongTopic(t *testing.T) {
	dir := t.TempDir()
	w, err := newPayloadWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	long := "x" + strings.Repeat("ééééééé.", 60) + "end" // two-byte characters: a cut can fall inside one
	if err := topics.ValidTopic(long); err != nil || len(long) <= 255 {
		t.Fatalf("test topic (%d bytes) is not a long valid topic: %v", len(long), err)
	}
	mid := "y" + strings.Repeat("ééééééé.", 19) + "end" // 289 bytes: cut at another place
	for _, topic := range []string{long, "a.short", mid} {
		path, err := w.write(&clientlib.Msg{Topic: topic, Data: []byte(topic)})
		if err != nil {
			t.Fatalf("topic of %d bytes: %v", len(topic), err)
		}
		if err := topics.ValidTopic(topic); err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		if len("."+name+".part") > 255 || !utf8.ValidString(name) || !strings.HasPrefix(topic, name[7:]) {
			t.Errorf("topic of %d bytes: file %q (%d bytes); want a valid name of at most 255 bytes with a .part, starting the topic", len(topic), name, len(name))
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != topic {
			t.Errorf("%s: %d bytes, %v; want the payload", name, len(got), err)
		}
	}
	if path, _ := w.write(&clientlib.Msg{Topic: "a.short"}); filepath.Base(path) != "000004-a.short" {
		t.Errorf("after the long ones, a short topic's file is %q; want 000004-a.short", path)
	}
}
