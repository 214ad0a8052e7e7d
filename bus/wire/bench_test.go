package wire

import "testing"

// BenchmarkNextRef is the Reader's cost per frame once the bytes are in its
// buffer: the header check and the split into sections, with no socket in
// the loop (a busy connection's read returns tens of frames at a time, so
// this is most of what a frame costs the reader). ns/op is ns per frame.
func BenchmarkNextRef(b *testing.B) {
	payload := make([]byte, 16)
	pubBytes := AppendPub(nil, "bench.topic", "", nil, payload, 0)
	pub := Frame{Header: Header{Op: OpPub, TopicLen: 11, PayloadLen: 16},
		Topic: []byte("bench.topic"), Payload: payload}
	o := Origin{Conn: 2, PID: 3, UID: 1000, GID: 1000}
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"PUB/16B", pubBytes},
		{"MSG/16B", AppendMsg(nil, 7, &o, &pub)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var buf []byte
			for len(buf)+len(c.frame) <= maxReadBuf {
				buf = append(buf, c.frame...)
			}
			lim := DefaultLimits
			fr := &Reader{lim: &lim, buf: buf, w: len(buf)}
			b.SetBytes(int64(len(c.frame)))
			b.ReportAllocs()
			for b.Loop() {
				if fr.r == fr.w {
					fr.r = 0 // the same bytes again: no read, no socket
				}
				if _, err := fr.NextRef(nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
