package clientlib

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock/memfd"
	"golang.org/x/sys/unix"
)

// Large payloads against a broker played by the test (fakebus_test.go):
// what the client sends, and what it does with every kind of payload
// descriptor a broker could hand it, including ones no real broker lets
// through.

// randomBytes returns n bytes that a mistake in offsets would not match.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// sealed returns a sealed memfd holding data, closed with the test.
func sealed(t *testing.T, data []byte) *os.File {
	t.Helper()
	f, err := memfd.FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sealedWith returns a memfd holding data that carries only seals.
func sealedWith(t *testing.T, data []byte, seals int) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("test-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "test-payload")
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// pipeEnds returns a pipe's read end, and closes both with the test.
func pipeEnds(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r
}

// openFiles returns how many descriptors of this process are not sockets
// or the runtime's own (epoll, eventfd, pidfd): the payloads and files a
// client may hold.
func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || strings.HasPrefix(target, "socket:") || strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		n++
	}
	return n - 1 // the directory's own, open while it is read
}

// rawFD is f's descriptor, for writing it to the client.
func rawFD(f *os.File) int { return int(f.Fd()) }

// errorsTo returns an error handler that sends every error to a channel.
func errorsTo() (Option, chan error) {
	errs := make(chan error, 16)
	return WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs <- err }), errs
}

func nextError(t *testing.T, errs chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-testCtx(t).Done():
		t.Fatal("no error reached the error handler")
		return nil
	}
}

// TestBadPayloadDropped: a MSG whose payload descriptor fails its check
// is dropped with every descriptor it brought, the error handler hears
// why, naming the subscription, and the next message still arrives.
func TestBadPayloadDropped(t *testing.T) {
	data := randomBytes(100)
	tests := []struct {
		name string
		file func(t *testing.T) *os.File
		size uint64
		want error // besides ErrBadPayload; nil: any cause
	}{
		{"unsealed", func(t *testing.T) *os.File { return sealedWith(t, data, 0) }, 100, memfd.ErrNotSealed},
		{"no write seal", func(t *testing.T) *os.File {
			return sealedWith(t, data, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
		}, 100, memfd.ErrNotSealed},
		{"truncated", func(t *testing.T) *os.File { return sealed(t, data[:60]) }, 100, memfd.ErrWrongSize},
		{"grown", func(t *testing.T) *os.File { return sealed(t, append(data, data...)) }, 100, memfd.ErrWrongSize},
		{"size past int64", func(t *testing.T) *os.File { return sealed(t, data) }, 1 << 63, memfd.ErrWrongSize},
		{"pipe", pipeEnds, 100, memfd.ErrNotMemfd},
		{"regular file", func(t *testing.T) *os.File {
			f, err := os.CreateTemp("", "payload")
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(f.Name())
			f.Write(data)
			t.Cleanup(func() { f.Close() })
			return f
		}, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFakeBus(t)
			fb.fdPayload = 1 << 30
			onErr, errs := errorsTo()
			c := fb.connect(onErr)
			sub, err := c.SubscribeSync("big.>")
			if err != nil {
				t.Fatal(err)
			}
			sid := fb.expect(wire.OpSub).ID
			payload, own := tc.file(t), pipeEnds(t)
			before := openFiles(t)
			fb.writeFDs(msgFD(sid, "big.bad", tc.size, 2), rawFD(payload), rawFD(own))
			fb.write(msg(sid, 7, "big.good", nil, "after"))
			if m := next(t, sub); m.Topic != "big.good" || string(m.Data) != "after" {
				t.Fatalf("got %q %q; want the message after the bad one", m.Topic, m.Data)
			}
			err = nextError(t, errs)
			if !errors.Is(err, ErrBadPayload) || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error handler got %v; want ErrBadPayload and %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), `"big.>"`) || !strings.Contains(err.Error(), `"big.bad"`) {
				t.Errorf("error %q names neither the subscription nor the message's topic", err)
			}
			// The client's copies are closed (the test's own stay open
			// until cleanup).
			if after := openFiles(t); after != before {
				t.Errorf("%d files open after the bad payload, %d before: the client kept some", after, before)
			}
			if c.Status() != Connected {
				t.Errorf("connection %v after a bad payload; want it to go on", c.Status())
			}
		})
	}
}

// TestPayloadFDShape: a MSG that says its payload is in a descriptor but
// has none breaks the protocol: the connection ends, it does not crash.
func TestPayloadFDShape(t *testing.T) {
	fb := newFakeBus(t)
	fb.fdPayload = 1 << 30
	c := fb.connect()
	sub, err := c.SubscribeSync("big.>")
	if err != nil {
		t.Fatal(err)
	}
	sid := fb.expect(wire.OpSub).ID
	fb.write(msgFD(sid, "big.none", 10, 0))
	if _, err := sub.Next(testCtx(t)); !errors.Is(err, wire.CodeBadFrame) {
		t.Fatalf("Next after a payload-in-a-descriptor MSG without one: %v; want bad frame", err)
	}
}

// TestReceivePayloadFD: a good payload memfd arrives as Data, or with
// PayloadFiles as the file itself; two subscriptions sharing the broker's
// one each get their own, and the message's own files follow the memfd.
func TestReceivePayloadFD(t *testing.T) {
	fb := newFakeBus(t)
	fb.fdPayload = 1 << 30
	c := fb.connect()
	plain, err := c.SubscribeSync("big.>")
	if err != nil {
		t.Fatal(err)
	}
	files, err := c.SubscribeSync("big.>", PayloadFiles()) // the same pattern: the two share one SUB
	if err != nil {
		t.Fatal(err)
	}
	sid := fb.expect(wire.OpSub).ID // one SUB: the two share it
	data := randomBytes(1<<20 + 3)
	payload, own := sealed(t, data), pipeEnds(t)
	before := openFiles(t)
	fb.writeFDs(msgFD(sid, "big.one", uint64(len(data)), 2), rawFD(payload), rawFD(own))

	m := next(t, plain)
	if !bytes.Equal(m.Data, data) || m.PayloadFile != nil || len(m.Files) != 1 {
		t.Fatalf("plain subscription got %d bytes (equal: %v), PayloadFile %v, %d files; want the payload as Data and 1 file",
			len(m.Data), bytes.Equal(m.Data, data), m.PayloadFile, len(m.Files))
	}
	m.CloseFiles()
	m = next(t, files)
	if m.Data != nil || m.PayloadFile == nil || len(m.Files) != 1 {
		t.Fatalf("PayloadFiles subscription got Data of %d bytes, PayloadFile %v, %d files; want the memfd and 1 file", len(m.Data), m.PayloadFile, len(m.Files))
	}
	got, err := memfd.ReadPayload(m.PayloadFile, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading the PayloadFile: %v (equal: %v)", err, bytes.Equal(got, data))
	}
	m.CloseFiles()
	if after := openFiles(t); after != before {
		t.Errorf("%d files open after closing what arrived; %d before", after, before)
	}
}

// TestPublishPayloadFD: what the client sends for each size and limit.
func TestPublishPayloadFD(t *testing.T) {
	fb := newFakeBus(t)
	fb.lim.MaxPayload = 64 << 10
	fb.fdPayload = 4 << 20
	c := fb.connect(WithLargePayloadThreshold(16 << 10))

	// expectPub reads the next PUB and returns its payload, read from its
	// memfd if it came in one, and the number of its own files.
	expectPub := func(wantFD bool) ([]byte, int) {
		t.Helper()
		f := fb.expect(wire.OpPub)
		if got := f.Flags&wire.PubPayloadFD != 0; got != wantFD {
			t.Fatalf("PUB flags %#x; want the payload in a memfd: %v", f.Flags, wantFD)
		}
		fds, err := fb.sock.TakeFDs(int(f.NFDs))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}()
		if !wantFD {
			return bytes.Clone(f.Payload), len(fds)
		}
		if len(f.Payload) != wire.PayloadFDLen || len(fds) < 1 {
			t.Fatalf("PUB with a memfd has a payload of %d bytes and %d descriptors", len(f.Payload), len(fds))
		}
		pf := os.NewFile(uintptr(fds[0]), "payload")
		got, err := memfd.ReadPayload(pf, int64(binary.BigEndian.Uint64(f.Payload)))
		if err != nil {
			t.Fatalf("the PUB's memfd: %v", err)
		}
		fds = fds[1:]
		pf.Close()
		return got, len(fds)
	}

	small, over, huge := randomBytes(16<<10), randomBytes(16<<10+1), randomBytes(1<<20)
	pipe := pipeEnds(t)
	for _, step := range []struct {
		data  []byte
		files []*os.File
		fd    bool
	}{
		{small, nil, false}, // at the threshold: inline
		{over, nil, true},   // one byte over
		{huge, []*os.File{pipe, pipe}, true},
		{nil, nil, false},
	} {
		if err := c.Publish("t.x", step.data, step.files...); err != nil {
			t.Fatalf("Publish of %d bytes: %v", len(step.data), err)
		}
		got, nfiles := expectPub(step.fd)
		if !bytes.Equal(got, step.data) || nfiles != len(step.files) {
			t.Fatalf("PUB of %d bytes carried %d (equal: %v) and %d files; want %d", len(step.data), len(got), bytes.Equal(got, step.data), nfiles, len(step.files))
		}
	}

	if err := c.Publish("t.x", randomBytes(4<<20+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Publish over max_fd_payload: %v; want ErrTooLarge", err)
	}
	if err := c.PublishRetained("t.x", over); err != nil {
		t.Fatalf("PublishRetained: %v", err)
	}
	if f := fb.expect(wire.OpPub); f.Flags != wire.PubRetain || !bytes.Equal(f.Payload, over) {
		t.Fatalf("retained PUB flags %#x, %d bytes; want inline", f.Flags, len(f.Payload))
	}
	if err := c.PublishRetained("t.x", randomBytes(64<<10+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PublishRetained over max_payload: %v; want ErrTooLarge (retained values never go in a memfd)", err)
	}

	// A PayloadFile goes as it is, and stays the caller's.
	pf := sealed(t, huge)
	if err := c.PublishMsg(&Msg{Topic: "t.x", PayloadFile: pf}); err != nil {
		t.Fatal(err)
	}
	if got, _ := expectPub(true); !bytes.Equal(got, huge) {
		t.Fatal("the PayloadFile's PUB does not carry its bytes")
	}
	if _, err := pf.Stat(); err != nil {
		t.Errorf("the caller's PayloadFile after PublishMsg: %v; want it still open", err)
	}
	for _, bad := range []*Msg{
		{Topic: "t.x", PayloadFile: sealedWith(t, small, 0)},
		{Topic: "t.x", PayloadFile: pipe},
		{Topic: "t.x", PayloadFile: pf, Data: small},
	} {
		if err := c.PublishMsg(bad); !errors.Is(err, ErrBadPayload) {
			t.Errorf("PublishMsg with PayloadFile %s and %d bytes of Data: %v; want ErrBadPayload", bad.PayloadFile.Name(), len(bad.Data), err)
		}
	}
	// Nothing of those was sent: the next PUB is this one.
	if err := c.Publish("t.mark", nil); err != nil {
		t.Fatal(err)
	}
	if f := fb.expect(wire.OpPub); string(f.Topic) != "t.mark" {
		t.Fatalf("next PUB is to %q; want t.mark", f.Topic)
	}
}

// TestPublishNoFDPayload: a broker that takes no payloads in memfds gets
// everything inline, up to its max_payload, a PayloadFile too.
func TestPublishNoFDPayload(t *testing.T) {
	fb := newFakeBus(t)
	fb.lim.MaxPayload = 64 << 10
	c := fb.connect(WithLargePayloadThreshold(0))
	data := randomBytes(64 << 10)
	if err := c.Publish("t.x", data); err != nil {
		t.Fatal(err)
	}
	if f := fb.expect(wire.OpPub); f.Flags != 0 || !bytes.Equal(f.Payload, data) {
		t.Fatalf("PUB flags %#x, %d bytes; want the payload inline", f.Flags, len(f.Payload))
	}
	if err := c.PublishMsg(&Msg{Topic: "t.x", PayloadFile: sealed(t, data)}); err != nil {
		t.Fatal(err)
	}
	if f := fb.expect(wire.OpPub); f.Flags != 0 || !bytes.Equal(f.Payload, data) {
		t.Fatalf("PayloadFile's PUB flags %#x, %d bytes; want its bytes inline", f.Flags, len(f.Payload))
	}
	if err := c.Publish("t.x", randomBytes(64<<10+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Publish over max_payload to a broker without memfds: %v; want ErrTooLarge", err)
	}
}

// TestPlanPayload: the threshold and the limits decide how each payload
// goes.
func TestPlanPayload(t *testing.T) {
	info := &wire.Info{MaxPayload: 1000, MaxHeaders: 100, MaxFDs: 3, MaxFDPayload: 5000}
	none := &wire.Info{MaxPayload: 1000, MaxHeaders: 100, MaxFDs: 3}
	tests := []struct {
		name      string
		info      *wire.Info
		threshold int
		topic     string
		size      int
		files     int
		flags     uint8
		fd        bool
		err       error
	}{
		{"default, small", info, DefaultLargePayloadThreshold, "a", 1000, 0, 0, false, nil},
		{"default, over max_payload", info, DefaultLargePayloadThreshold, "a", 1001, 0, 0, true, nil},
		{"threshold 0, 1 byte", info, 0, "a", 1, 0, 0, true, nil},
		{"threshold 0, empty", info, 0, "a", 0, 0, 0, false, nil},
		{"at the threshold", info, 10, "a", 10, 0, 0, false, nil},
		{"over the threshold", info, 10, "a", 11, 0, 0, true, nil},
		{"negative, small", info, -1, "a", 1000, 0, 0, false, nil},
		{"negative, over max_payload", info, -1, "a", 1001, 0, 0, false, ErrTooLarge},
		{"at max_fd_payload", info, 0, "a", 5000, 0, 0, true, nil},
		{"over max_fd_payload", info, 0, "a", 5001, 0, 0, false, ErrTooLarge},
		{"no memfds, fits", none, 0, "a", 1000, 0, 0, false, nil},
		{"no memfds, over", none, 0, "a", 1001, 0, 0, false, ErrTooLarge},
		{"retained", info, 0, "a", 10, 0, wire.PubRetain, false, nil},
		{"retained over max_payload", info, 0, "a", 1001, 0, wire.PubRetain, false, ErrTooLarge},
		{"broker request", info, 0, wire.SysReqPrefix + "stats", 10, 0, 0, false, nil},
		{"broker request over", info, 0, wire.SysReqPrefix + "stats", 1001, 0, 0, false, ErrTooLarge},
		{"files and the memfd fit", info, 0, "a", 10, 2, 0, true, nil},
		{"files and the memfd do not", info, 0, "a", 10, 3, 0, false, ErrTooManyFiles},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Conn{opts: defaultOptions()}
			c.opts.largeThreshold = tc.threshold
			c.info.Store(tc.info)
			fd, size, err := c.planPayload(tc.topic, make([]byte, tc.size), nil, tc.files, tc.flags)
			if fd != tc.fd || !errors.Is(err, tc.err) || err == nil && size != int64(tc.size) {
				t.Fatalf("planPayload: memfd %v, size %d, %v; want %v, %d, %v", fd, size, err, tc.fd, tc.size, tc.err)
			}
		})
	}
}

// TestPendingPayloadCounts: a payload memfd whose PUB waits for the
// writer counts against the pending limit at its size, until the writer
// takes the PUB.
func TestPendingPayloadCounts(t *testing.T) {
	c := &Conn{opts: defaultOptions()}
	c.opts.maxPending = 1 << 20
	if c.fullLocked(1) {
		t.Fatal("full with nothing queued")
	}
	c.out.Append(make([]byte, 100)) // a frame before it
	c.queuedPayloadLocked(2 << 20)
	c.out.Append(make([]byte, wire.HeaderLen+wire.PayloadFDLen)) // its PUB
	if !c.fullLocked(1) {
		t.Fatalf("not full with a 2 MiB payload memfd waiting and a 1 MiB limit (pending %d)", c.fdPending)
	}
	var batch wire.Outbox
	if took, _ := c.out.TakeInto(&batch, true, wire.BatchMax); !took {
		t.Fatal("the writer took nothing")
	}
	c.payloadsTakenLocked()
	if c.fdPending != 0 || len(c.fdMarks) != 0 || c.fullLocked(1) {
		t.Fatalf("after the writer took the PUB: pending %d, %d marks, full %v", c.fdPending, len(c.fdMarks), c.fullLocked(1))
	}
	batch.Reset()
}

// TestBadReplyPayload: a reply whose payload memfd fails its check fails
// its Request at once, with ErrBadPayload, rather than at its timeout.
func TestBadReplyPayload(t *testing.T) {
	fb := newFakeBus(t)
	fb.fdPayload = 1 << 30
	c := fb.connect()
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(testCtx(t), "svc.x", []byte("q"))
		done <- err
	}()
	sub := fb.expect(wire.OpSub) // the inbox; a frame is valid until the next is read
	sid, inbox := sub.ID, string(sub.Topic)
	reply := string(fb.expect(wire.OpPub).Reply)
	if !strings.HasPrefix(reply, strings.TrimSuffix(inbox, ">")) {
		t.Fatalf("request's reply topic %q is not under the inbox %q", reply, inbox)
	}
	payload := sealedWith(t, randomBytes(100), 0)
	before := openFiles(t)
	fb.writeFDs(msgFD(sid, reply, 100, 1), rawFD(payload))
	select {
	case err := <-done:
		if !errors.Is(err, ErrBadPayload) || !errors.Is(err, memfd.ErrNotSealed) || !strings.Contains(err.Error(), `"svc.x"`) {
			t.Fatalf("Request: %v; want ErrBadPayload, not sealed, naming svc.x", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("Request still waits after its reply was dropped")
	}
	if after := openFiles(t); after != before {
		t.Errorf("%d files open after the bad reply, %d before", after, before)
	}
}

// A publisher can send a sparse memfd: sealed at 2 GiB by ftruncate, it
// costs the publisher no memory, while a receiver that read it would
// allocate all of it. Over the connection's limit it is dropped unread
// and reported as too large; a PayloadFiles subscription still takes it,
// since it reads nothing.
func TestLargePayloadLimit(t *testing.T) {
	const size = 2 << 30
	sparse := func(t *testing.T) *os.File {
		fd, err := unix.MemfdCreate("sparse", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "sparse")
		t.Cleanup(func() { f.Close() })
		if err := unix.Ftruncate(fd, size); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, memfd.RequiredSeals); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if _, err := Connect(context.Background(), WithLargePayloadLimit(-1)); err == nil {
		t.Fatal("Connect took a negative large payload limit")
	}
	fb := newFakeBus(t)
	fb.fdPayload = 4 << 30
	onErr, errs := errorsTo()
	c := fb.connect(onErr)
	sub, err := c.SubscribeSync("big.>")
	if err != nil {
		t.Fatal(err)
	}
	sid := fb.expect(wire.OpSub).ID
	files, err := c.SubscribeSync("big.*", PayloadFiles()) // another pattern: the same one would share sub's SUB
	if err != nil {
		t.Fatal(err)
	}
	fsid := fb.expect(wire.OpSub).ID
	payload := sparse(t)
	fb.writeFDs(msgFD(sid, "big.sparse", size, 1), rawFD(payload))
	fb.writeFDs(msgFD(fsid, "big.sparse", size, 1), rawFD(payload))
	fb.write(msg(sid, 7, "big.next", nil, "after"))
	if m := next(t, sub); m.Topic != "big.next" {
		t.Fatalf("got %q; want the message after the sparse one", m.Topic)
	}
	err = nextError(t, errs)
	if !errors.Is(err, ErrBadPayload) || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "WithLargePayloadLimit") {
		t.Fatalf("error handler got %v; want ErrBadPayload and ErrTooLarge naming WithLargePayloadLimit", err)
	}
	m := next(t, files)
	defer m.CloseFiles()
	if m.PayloadFile == nil || m.Data != nil {
		t.Fatalf("PayloadFiles subscription got file %v, %d bytes of data; want the file", m.PayloadFile, len(m.Data))
	}
	if st, err := m.PayloadFile.Stat(); err != nil || st.Size() != size {
		t.Fatalf("its file: %v, %v; want %d bytes", st, err, size)
	}
}

// TestFDPayloadNotReadWhenDropped: a publisher seals sparse memfds,
// which cost it nothing, and sends a burst of them to a subscription
// that is not consuming. Its queue has room for one (the first, as it is
// empty); the others are dropped. They must be dropped before they are
// read: read first, each cost the receiver its whole size in memory
// before the queue's bound was looked at, so one read batch of such
// messages made the receiver allocate n times the payload.
func TestFDPayloadNotReadWhenDropped(t *testing.T) {
	const size, n = 64 << 20, 12
	fd, err := unix.MemfdCreate("sparse", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	payload := os.NewFile(uintptr(fd), "sparse")
	defer payload.Close()
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, memfd.RequiredSeals); err != nil {
		t.Fatal(err)
	}
	fb := newFakeBus(t)
	fb.fdPayload = 1 << 30
	onErr, errs := errorsTo()
	c := fb.connect(onErr, WithSubscriptionLimits(100, 1<<20))
	sub, err := c.SubscribeSync("big")
	if err != nil {
		t.Fatal(err)
	}
	sid := fb.expect(wire.OpSub).ID
	mark, err := c.SubscribeSync("mark")
	if err != nil {
		t.Fatal(err)
	}
	msid := fb.expect(wire.OpSub).ID
	before := openFiles(t)
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var frames []byte
	fds := make([]int, n)
	for i := range fds {
		frames = append(frames, msgFD(sid, "big", size, 1)...)
		fds[i] = rawFD(payload)
	}
	fb.writeFDs(frames, fds...)
	fb.write(msg(msid, 7, "mark", nil, "after")) // read after every one of them
	next(t, mark)
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	if got := openFiles(t); got != before {
		t.Errorf("%d files open after the burst, %d before; want every payload descriptor closed", got, before)
	}
	if sub.Dropped() != n-1 {
		t.Errorf("subscription dropped %d; want %d", sub.Dropped(), n-1)
	}
	var lost *LostError
	if err := nextError(t, errs); !errors.As(err, &lost) || lost.Total != n-1 {
		t.Errorf("error handler got %v; want a LostError for %d messages", err, n-1)
	}
	// One payload read, plus slack for whatever else ran; the bug read all n.
	if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 4*size {
		t.Errorf("receiving the burst allocated %d MiB; want about one payload's %d MiB", alloc>>20, size>>20)
	}
	m := next(t, sub)
	if len(m.Data) != size {
		t.Errorf("the queued message has %d bytes; want %d", len(m.Data), size)
	}
}
