package bus

import (
	"context"
	"encoding/binary"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// fuzzServer is one broker shared by every input of a fuzzing process: a
// connection is cheap, a server is not, and what one input leaves behind
// must not matter to the next (which the checks after each input prove).
var fuzzServer = sync.OnceValue(func() *Server {
	cfg := DefaultConfig()
	cfg.FrameTimeout = 50 * time.Millisecond
	cfg.HandshakeTimeout = 50 * time.Millisecond
	cfg.WriteTimeout = 100 * time.Millisecond
	cfg.MaxPending = 256 << 10
	srv, err := NewServer(cfg)
	if err != nil {
		panic(err)
	}
	return srv
})

// fuzz actions: what each chunk of an input does with the client's end.
const (
	actWrite    = iota // write the chunk's bytes
	actWriteFDs        // write them with descriptors attached
	actRead            // read what has arrived
	nActs
)

// fuzzChunk encodes one action for a seed input.
func fuzzChunk(act, nfds int, b []byte) []byte {
	out := []byte{byte(act | nfds<<2), 0, 0}
	binary.LittleEndian.PutUint16(out[1:], uint16(len(b)))
	return append(out, b...)
}

// FuzzConnection feeds the broker random frame sequences, with and without
// descriptors, over a socketpair, and checks after each that the broker
// served and let go of the connection: no panic, nothing left charged, no
// descriptor left open, and the broker still serves. The seeds hold every
// op, good and bad.
func FuzzConnection(f *testing.F) {
	hello, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: "fuzz"})
	h := wire.AppendControl(nil, wire.OpHello, 0, hello)
	pub := wire.AppendPub(nil, "a.b", "r.s", wire.AppendField(nil, "k", "v"), []byte("payload"), 0)
	pubFD := wire.AppendPub(nil, "a.b", "", nil, []byte("x"), 2)
	// Payloads in a memfd: fuzzFiles' first file is a sealed memfd of 4
	// bytes; announced as 4 it is routed, as 5 refused (bad payload).
	pubPayload := func(size byte, id uint32, nfds int) []byte {
		b := wire.AppendPub(nil, "a.b", "", nil, []byte{0, 0, 0, 0, 0, 0, 0, size}, nfds)
		b[2] = wire.PubPayloadFD
		wire.SetID(b, id)
		return b
	}
	seeds := [][]byte{
		fuzzChunk(actWrite, 0, h),
		fuzzChunk(actWrite, 0, append(h, wire.AppendSub(nil, 1, "a.>", "", 0)...)),
		fuzzChunk(actWrite, 0, append(append(h, wire.AppendSub(nil, 1, "a.*", "g", wire.SubDisconnect)...), pub...)),
		append(fuzzChunk(actWrite, 0, append(h, wire.AppendSub(nil, 1, ">", "", 0)...)), fuzzChunk(actWriteFDs, 2, pubFD)...),
		fuzzChunk(actWrite, 0, append(h, wire.AppendControl(nil, wire.OpUnsub, 3, nil)...)),
		append(fuzzChunk(actWrite, 0, append(h, wire.AppendControl(nil, wire.OpPing, 9, nil)...)), fuzzChunk(actRead, 0, nil)...),
		fuzzChunk(actWrite, 0, append(h, wire.AppendControl(nil, wire.OpPong, 9, nil)...)),
		fuzzChunk(actWrite, 0, append(h, wire.AppendControl(nil, wire.OpInfo, 0, hello)...)),
		fuzzChunk(actWrite, 0, append(h, wire.AppendControl(nil, wire.OpErr, 0, nil)...)),
		fuzzChunk(actWrite, 0, append(h, wire.AppendMsg(nil, 1, &wire.Origin{}, &wire.Frame{Topic: []byte("a")})...)),
		fuzzChunk(actWrite, 0, append(h, h...)),
		fuzzChunk(actWriteFDs, 3, append(h, pub[:10]...)),
		fuzzChunk(actWrite, 0, pub),
		append(fuzzChunk(actWrite, 0, append(h, wire.AppendSub(nil, 1, ">", "", 0)...)), fuzzChunk(actWriteFDs, 1, pubPayload(4, 7, 1))...),
		append(fuzzChunk(actWrite, 0, append(h, wire.AppendSub(nil, 1, ">", "", wire.SubMonitor)...)), fuzzChunk(actWriteFDs, 3, pubPayload(4, 0, 3))...),
		append(fuzzChunk(actWrite, 0, h), fuzzChunk(actWriteFDs, 1, pubPayload(5, 1, 1))...),
		append(fuzzChunk(actWrite, 0, h), fuzzChunk(actWrite, 0, pubPayload(4, 1, 0))...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		srv := fuzzServer()
		base := countFDs(t)
		client := fuzzConnect(t, srv)
		files := fuzzFiles(t)
		for len(input) >= 3 {
			act, nfds := int(input[0]&3)%nActs, int(input[0]>>2)
			n := min(int(binary.LittleEndian.Uint16(input[1:])), len(input)-3)
			chunk := input[3 : 3+n]
			input = input[3+n:]
			fuzzAct(client, act, nfds, chunk, files)
		}
		client.Close()
		for _, fl := range files {
			fl.Close()
		}
		waitFor(t, "the broker to let go of the connection", func() bool {
			st := srv.Stats()
			return st.Conns == 0 && st.Memory == 0 && st.FDs == 0 && st.PayloadBytes == 0
		})
		drained, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.closer.waitIdle(drained)
		if got := countFDs(t); got > base {
			t.Fatalf("%d descriptors open after the input; %d before", got, base)
		}
	})
}

// fuzzConnect hands the broker one end of a socketpair, as if accepted,
// and returns the other.
func fuzzConnect(t *testing.T, srv *Server) *unixsock.Conn {
	a, b, err := unixsock.Socketpair(unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage))
	if err != nil {
		t.Fatal(err)
	}
	srv.start(a)
	return b
}

// fuzzFiles returns descriptors of several kinds to attach: a sealed
// memfd of 4 bytes (a payload for PUB flag 0x02), a memfd, a pipe's ends
// and a socketpair's ends.
func fuzzFiles(t *testing.T) []*os.File {
	sealed, err := unix.MemfdCreate("fuzz-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	unix.Pwrite(sealed, []byte("four"), 0)
	if _, err := unix.FcntlInt(uintptr(sealed), unix.F_ADD_SEALS, allSeals); err != nil {
		t.Fatal(err)
	}
	mfd, err := unix.MemfdCreate("fuzz", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return []*os.File{os.NewFile(uintptr(sealed), "payload"), os.NewFile(uintptr(mfd), "memfd"), r, w,
		os.NewFile(uintptr(pair[0]), "pair0"), os.NewFile(uintptr(pair[1]), "pair1")}
}

// fuzzAct does one action, never blocking long: the broker may stop
// reading a client that does not read its replies.
func fuzzAct(c *unixsock.Conn, act, nfds int, b []byte, files []*os.File) {
	switch act {
	case actWrite, actWriteFDs:
		if len(b) == 0 {
			return
		}
		var fds []int
		for i := range nfds * (act - actWrite) {
			fds = append(fds, int(files[i%len(files)].Fd()))
		}
		c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		c.WriteWithFDs(b, fds)
	case actRead:
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		buf := make([]byte, 64<<10)
		c.Read(buf)
		if q := c.QueuedFDs(); q > 0 {
			if fds, err := c.TakeFDs(q); err == nil {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}
		}
	}
}
