package bus

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock/memfd"
	"golang.org/x/sys/unix"
)

// allSeals are the seals a payload memfd must carry.
const allSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL

// payloadMemfd returns a memfd holding content, then grown to size bytes
// (sparse: ftruncate costs no memory), with exactly seals.
func payloadMemfd(t testing.TB, content string, size int64, seals int) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("bus-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd:bus-payload")
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// pubFD sends a PUB whose payload is in fds[0], announcing size, with a
// receipt id if id is not 0.
func (c *rawClient) pubFD(id uint32, topic string, size uint64, fds ...int) {
	c.t.Helper()
	c.requestFD(id, 0, topic, "", size, fds...)
}

// requestFD is pubFD with a reply topic and more flags.
func (c *rawClient) requestFD(id uint32, flags uint8, topic, reply string, size uint64, fds ...int) {
	c.t.Helper()
	var n [wire.PayloadFDLen]byte
	binary.BigEndian.PutUint64(n[:], size)
	f := wire.AppendPub(nil, topic, reply, nil, n[:], len(fds))
	f[2] = wire.PubPayloadFD | flags
	wire.SetID(f, id)
	c.send(f, fds...)
}

// expectPayloadMsg reads a MSG on topic whose payload is in a descriptor
// of size bytes, carrying nfds descriptors; it returns them.
func (c *rawClient) expectPayloadMsg(topic string, size uint64, nfds int) (wire.Frame, []int) {
	c.t.Helper()
	f := c.next()
	if f.Op != wire.OpMsg || string(f.Topic) != topic || f.Flags != wire.MsgPayloadFD || int(f.NFDs) != nfds ||
		len(f.Payload) != wire.PayloadFDLen || binary.BigEndian.Uint64(f.Payload) != size {
		c.t.Fatalf("got %v on %q flags %#x, %d fds, payload % x; want a MSG on %q flags %#x, %d fds, size %d",
			f.Op, f.Topic, f.Flags, f.NFDs, f.Payload, topic, wire.MsgPayloadFD, nfds, size)
	}
	fds, err := c.sock.TakeFDs(nfds)
	if err != nil {
		c.t.Fatal(err)
	}
	return f, fds
}

// closeFDs closes received descriptors.
func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// inode returns the device and inode of fd's file.
func inode(t testing.TB, fd int) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// heldPayload returns the bytes of held payloads charged to any uid.
func (s *Server) heldPayload() int64 { return s.Stats().PayloadBytes }

// One memfd published to four subscribers reaches each as a descriptor of
// the same file (same device and inode): the broker routed it, it did not
// copy it. The message's own descriptor after it travels as usual, and
// the publisher's RECEIPT counts all four.
func TestPayloadFDSameFileToEverySubscriber(t *testing.T) {
	srv, path := testBroker(t, nil)
	base := countFDs(t)
	var subs []*rawClient
	for range 4 {
		subs = append(subs, subscriber(t, path, "bulk.>"))
	}
	pub := connectRaw(t, path)
	const content = "payload bytes the broker never reads"
	payload := payloadMemfd(t, content, int64(len(content)), allSeals)
	own := memfdWith(t, "the message's own file")
	pub.pubFD(1, "bulk.one", uint64(len(content)), int(payload.Fd()), int(own.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 4}) {
		t.Fatalf("receipt %v; want 4 delivered", r)
	}
	want := inode(t, int(payload.Fd()))
	for i, s := range subs {
		_, fds := s.expectPayloadMsg("bulk.one", uint64(len(content)), 2)
		if got := inode(t, fds[0]); got != want {
			t.Fatalf("subscriber %d got file %v; want the publisher's %v", i, got, want)
		}
		if err := memfd.Verify(fds[0], int64(len(content))); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		b := make([]byte, len(content))
		if n, err := unix.Pread(fds[0], b, 0); n != len(b) || string(b) != content {
			t.Fatalf("subscriber %d read %q, %v", i, b[:max(n, 0)], err)
		}
		if got := readFD(t, fds[1]); got != "the message's own file" { // closes it
			t.Fatalf("subscriber %d's second descriptor holds %q", i, got)
		}
		unix.Close(fds[0])
	}
	if st := srv.Stats(); st.FDPayloads != 1 || st.BadPayloads != 0 {
		t.Fatalf("stats count %d payloads in memfds, %d refused; want 1 and 0", st.FDPayloads, st.BadPayloads)
	}
	waitFor(t, "the held payload to be given back", func() bool { return srv.heldPayload() == 0 })
	payload.Close()
	own.Close()
	for _, c := range append(subs, pub) {
		c.sock.Close()
	}
	waitFDs(t, base)
}

// pipeFD returns the read end of a new pipe.
func pipeFD(t *testing.T) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return int(r.Fd())
}

// Every payload descriptor the broker will not route is refused with a
// non-fatal bad payload naming the problem: the PUB reaches nobody, its
// descriptors are closed, its RECEIPT says 0 and 0, nothing is left
// charged, and the connection carries on.
func TestPayloadFDRefusals(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload = 1 << 20
		c.User.FDPayload = 1 << 20
	})
	sub := subscriber(t, path, "p")
	pub := connectRaw(t, path)
	regular, err := os.CreateTemp("", "bus-payload")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(regular.Name())
	regular.WriteString("1234")
	defer regular.Close()
	sock := socketpairFDs(t)
	missing := func(seal int) int { return allSeals &^ seal }
	cases := []struct {
		name string
		fd   func() int
		size uint64
		text string
	}{
		{"unsealed", func() int { return int(payloadMemfd(t, "1234", 4, 0).Fd()) }, 4, "not sealed: memfd: not sealed: missing"},
		{"no shrink seal", func() int { return int(payloadMemfd(t, "1234", 4, missing(unix.F_SEAL_SHRINK)).Fd()) }, 4, "missing F_SEAL_SHRINK"},
		{"no grow seal", func() int { return int(payloadMemfd(t, "1234", 4, missing(unix.F_SEAL_GROW)).Fd()) }, 4, "missing F_SEAL_GROW"},
		{"no write seal", func() int { return int(payloadMemfd(t, "1234", 4, missing(unix.F_SEAL_WRITE)).Fd()) }, 4, "missing F_SEAL_WRITE"},
		{"no seal seal", func() int { return int(payloadMemfd(t, "1234", 4, missing(unix.F_SEAL_SEAL)).Fd()) }, 4, "missing F_SEAL_SEAL"},
		{"truncated before sealing", func() int { return int(payloadMemfd(t, "12", 2, allSeals).Fd()) }, 4, "holds 2 bytes, the message says 4"},
		{"grown before sealing", func() int { return int(payloadMemfd(t, "1234", 4096, allSeals).Fd()) }, 4, "holds 4096 bytes, the message says 4"},
		{"pipe", func() int { return pipeFD(t) }, 4, "not a memfd"},
		{"regular file", func() int { return int(regular.Fd()) }, 4, ""}, // not a memfd, or (on tmpfs) not sealed
		{"socket", func() int { return sock[0] }, 4, "not a memfd"},
		{"over max_fd_payload", func() int { return int(payloadMemfd(t, "", 2<<20, allSeals).Fd()) }, 2 << 20, "payload of 2097152 bytes in a descriptor; the limit is 1048576 (max_fd_payload)"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub.t = t
			before := srv.Stats()
			id := uint32(i + 1)
			pub.pubFD(id, "p", tc.size, tc.fd())
			e := pub.expectErr(wire.CodeBadPayload, tc.text)
			if e.Op != wire.OpPub || e.Code.Fatal() {
				t.Fatalf("ERR %+v; want about the PUB, not fatal", e)
			}
			if tc.text == "" && !strings.Contains(e.Text, "not a memfd") && !strings.Contains(e.Text, "not sealed") {
				t.Fatalf("ERR %q; want it to say not a memfd (or, on tmpfs, not sealed)", e.Text)
			}
			if r := pub.expectReceipt(id); r != (wire.Receipt{}) {
				t.Fatalf("receipt %v; want 0 and 0", r)
			}
			sub.t = t
			sub.sync() // a MSG for the refused PUB would come before the PONG
			pub.pub("p", fmt.Sprint("after ", tc.name))
			sub.expectMsg("p", fmt.Sprint("after ", tc.name))
			if st := srv.Stats(); st.BadPayloads != before.BadPayloads+1 || st.FDPayloads != 0 {
				t.Fatalf("%d refused, %d routed; want %d and 0", st.BadPayloads, st.FDPayloads, before.BadPayloads+1)
			}
			// At most as many as before: a descriptor the broker was still
			// closing when the subtest began (the connections' setup, under
			// load) may be gone by now too.
			waitFor(t, "the refused descriptor to be closed", func() bool { return srv.Stats().FDs <= before.FDs })
			if n := srv.heldPayload(); n != 0 {
				t.Fatalf("%d payload bytes still charged", n)
			}
		})
	}
	stillServes(t, path)
}

// The payload-in-a-descriptor flag without a descriptor, or with a
// payload section other than 8 bytes, is a malformed frame: fatal, from
// the header alone.
func TestPayloadFDBadShapeIsFatal(t *testing.T) {
	srv, path := testBroker(t, nil)
	base := countFDs(t)
	payload := payloadMemfd(t, "1234", 4, allSeals)
	for _, tc := range []struct {
		name  string
		frame []byte
		fds   []int
		text  string
	}{
		{"no descriptor", wire.AppendPub(nil, "p", "", nil, make([]byte, 8), 0), nil, "with 0 fds"},
		{"4-byte size", wire.AppendPub(nil, "p", "", nil, []byte{0, 0, 0, 4}, 1), []int{int(payload.Fd())}, "payload section of 4 bytes"},
		{"inline payload", wire.AppendPub(nil, "p", "", nil, []byte("the payload itself"), 1), []int{int(payload.Fd())}, "payload section of 18 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connectRaw(t, path)
			tc.frame[2] = wire.PubPayloadFD
			c.send(tc.frame, tc.fds...)
			c.expectErr(wire.CodeBadFrame, tc.text)
			c.expectClosed()
		})
	}
	payload.Close()
	waitFDs(t, base)
	if st := srv.Stats(); st.FDPayloads != 0 || st.BadPayloads != 0 {
		t.Fatalf("%d routed, %d refused as bad payload; want none: these are bad frames", st.FDPayloads, st.BadPayloads)
	}
	stillServes(t, path)
}
