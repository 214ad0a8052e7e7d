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
		if len(name) > 255 || !utf8.ValidString(name) || !strings.HasPrefix(topic, name[7:]) || len(topic) > 255 && len(name) < 250 {
			t.Errorf("topic of %d bytes: file %q (%d bytes); want a valid name of 250 to 255 bytes, starting the topic", len(topic), name, len(name))
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != topic {
			t.Errorf("%s: %d bytes, %v; want the payload", name, len(got), err)
		}
	}
	if path, _ := w.write(&clientlib.Msg{Topic: "a.short"}); filepath.Base(path) != "000004-a.short" {
		t.Errorf("after the long ones, a short topic's file is %q; want 000004-a.short", path)
	}
}

// sub -o in a directory someone else may write to (one made in /tmp by
// another user, which -o takes as it is): the hidden file a payload is
// written under had a name known in advance and was opened following
// symlinks and truncating, so a symlink planted there made sub overwrite
// whatever file it pointed to with the payload; and the rename to the
// final name replaced a file of that name made after sub started. Now
// the hidden file is a new one of sub's own (O_EXCL, a random part), and
// the payload takes the next free number rather than replace a file.
func TestPayloadWriterPlantedFiles(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := newPayloadWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, ".000001-t.part")); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "000002-t")
	if err := os.WriteFile(planted, []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, payload := range []string{"one", "two"} {
		path, err := w.write(&clientlib.Msg{Topic: "t", Data: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != payload {
			t.Errorf("%s: %q, %v; want %q", path, got, err, payload)
		}
		paths = append(paths, filepath.Base(path))
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("the file the planted symlink points to now holds %q", got)
	}
	if got, _ := os.ReadFile(planted); string(got) != "theirs" {
		t.Errorf("the file made after sub started was replaced: it holds %q", got)
	}
	if paths[0] != "000001-t" || paths[1] != "000003-t" {
		t.Errorf("payloads written to %q; want 000001-t and 000003-t", paths)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 { // the symlink, the planted file and the two payloads
		t.Errorf("%d entries in %s; want 4, no hidden file left", len(ents), dir)
	}
}
