package clientlib

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock/memfd"
)

// Large payloads (docs/PROTOCOL.md section 6.1). A payload over the
// connection's threshold, or over the broker's max_payload, is not copied
// through the socket: the publisher writes it into a new memfd with
// pwrite, seals it, and sends the descriptor, with the payload's size as
// the PUB's 8-byte payload section and flag 0x02. The broker routes the
// descriptor like any other, never reading it, and each receiver checks
// the seals and the size and reads the bytes with pread into memory of
// its own (or, with PayloadFiles, takes the descriptor as it is).

// DefaultLargePayloadThreshold is the payload size above which a message
// goes in a sealed memfd rather than inline, unless
// WithLargePayloadThreshold says otherwise. It lies where make bench's
// payload-size sweep (docs/PAYLOADS.md) found the two ways cross, one
// subscriber reading each payload: in two runs (commits 50bf190 and
// 656835d) inline was 1.2-1.3 times faster at 256 KiB, the memfd
// 1.2-1.3 times at 1 MiB and 2.0-2.6 times at 4 MiB.
const DefaultLargePayloadThreshold = 512 << 10

// WithLargePayloadThreshold sets the payload size in bytes above which
// Publish (and every call that publishes) sends the payload in a sealed
// memfd instead of inline, when the broker takes payloads in memfds (its
// INFO announces max_fd_payload); default DefaultLargePayloadThreshold.
// 0 sends every non-empty payload in a memfd; a negative value never does,
// so a payload over the broker's max_payload is then refused with
// ErrTooLarge. Whatever the threshold, a payload over max_payload goes in
// a memfd if the broker takes them, and retained messages, requests to
// the broker ($SYS.req.) and wills always go inline.
func WithLargePayloadThreshold(bytes int) Option {
	return func(o *options) error {
		o.largeThreshold = bytes
		return nil
	}
}

// DefaultLargePayloadLimit is the largest payload that came in a memfd
// a connection reads into memory, unless WithLargePayloadLimit says
// otherwise.
const DefaultLargePayloadLimit = 1 << 30

// WithLargePayloadLimit sets the largest payload in bytes, among those
// that come in a memfd, that the connection reads into a Msg's Data;
// default DefaultLargePayloadLimit. A larger one is dropped, its
// descriptors closed, and the error handler gets an error matching both
// ErrBadPayload and ErrTooLarge. The broker bounds such payloads only by
// its max_fd_payload (4 GiB by default), and a publisher can send a
// sparse memfd that costs it no memory, while each receiver that reads it
// allocates its whole size: this bound is the receiver's own. A
// subscription with PayloadFiles takes payloads of any size, since it
// reads nothing.
func WithLargePayloadLimit(bytes int64) Option {
	return func(o *options) error {
		if bytes < 0 {
			return fmt.Errorf("bus: large payload limit %d is negative", bytes)
		}
		o.largeLimit = bytes
		return nil
	}
}

// PayloadFiles makes the subscription take a payload that came in a memfd
// as the file itself, not its bytes: Msg.PayloadFile is the memfd,
// checked (memfd, sealed, of the size announced), and Msg.Data is nil. The
// receiver owns the file and closes it (Msg.CloseFiles does). It is for
// receivers that pass the bytes on without reading them all (copy them
// to a file with sendfile(2) or copy_file_range(2) at explicit offsets,
// never at the file's own read position, which every receiver shares with
// the sender; map them with memfd.Open), so a payload of any size costs
// them no memory of their own. Payloads that came inline are in Data as
// always.
func PayloadFiles() SubOption { return func(c *subConfig) { c.payloadFiles = true } }

// planPayload decides how a payload of data (or pf, a Msg.PayloadFile)
// goes, inline or in a memfd (viaFD), checks it against the broker's
// limits, and returns its size. pf, if not nil, is verified here, before
// anything is queued. nfiles is the message's own files: a memfd comes
// before them, and counts against max_fds.
func (c *Conn) planPayload(topic string, data []byte, pf *os.File, nfiles int, flags uint8) (viaFD bool, size int64, err error) {
	lim := c.info.Load()
	t := c.opts.largeThreshold
	if pf == nil && (t < 0 || len(data) <= t) && len(data) <= int(lim.MaxPayload) {
		return false, int64(len(data)), nil // the common case: inline
	}
	size = int64(len(data))
	if pf != nil {
		if len(data) > 0 {
			return false, 0, fmt.Errorf("%w: publish to %q: a message has Data or a PayloadFile, not both", ErrBadPayload, topic)
		}
		if size, err = verifyPayloadFile(pf); err != nil {
			return false, 0, fmt.Errorf("publish to %q: %w", topic, err)
		}
	}
	switch {
	case t >= 0 && lim.MaxFDPayload > 0 && flags&wire.PubRetain == 0 && !strings.HasPrefix(topic, wire.SysReqPrefix):
		if uint64(size) > lim.MaxFDPayload {
			return false, 0, fmt.Errorf("%w: payload of %d bytes; the bus takes %d in a memfd", ErrTooLarge, size, lim.MaxFDPayload)
		}
		if nfiles+1 > int(lim.MaxFDs) {
			return false, 0, fmt.Errorf("%w: %d files and the payload's memfd; the bus takes %d per message", ErrTooManyFiles, nfiles, lim.MaxFDs)
		}
		return true, size, nil
	case size <= int64(lim.MaxPayload):
		return false, size, nil
	}
	why := "and no payload in a memfd"
	switch {
	case flags&wire.PubRetain != 0:
		why = "inline, as a retained value always goes"
	case strings.HasPrefix(topic, wire.SysReqPrefix):
		why = "inline, as a request to the broker always goes"
	case t < 0:
		why = "inline, which WithLargePayloadThreshold made the only way"
	}
	return false, 0, fmt.Errorf("%w: payload of %d bytes; the bus takes %d %s", ErrTooLarge, size, lim.MaxPayload, why)
}

// verifyPayloadFile checks that pf is a sealed memfd and returns its size.
func verifyPayloadFile(pf *os.File) (int64, error) {
	rc, err := pf.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("%w: PayloadFile %s: %w", ErrBadPayload, pf.Name(), err)
	}
	var size int64
	var verr error
	if err := rc.Control(func(fd uintptr) { size, verr = memfd.Size(int(fd)) }); err != nil {
		verr = err
	}
	if verr != nil {
		return 0, fmt.Errorf("%w: PayloadFile %s: %w", ErrBadPayload, pf.Name(), verr)
	}
	return size, nil
}

// readPayloadFile reads a PayloadFile of size bytes that goes inline;
// verifyPayloadFile has checked it.
func readPayloadFile(pf *os.File, size int64) ([]byte, error) {
	data := memfd.NewBuffer(int(size))
	if err := memfd.ReadInto(pf, data); err != nil {
		return nil, fmt.Errorf("%w: PayloadFile: %w", ErrBadPayload, err)
	}
	return data, nil
}

// payloadFDs returns the descriptors of a message whose payload goes in a
// memfd: first a new sealed memfd holding data, or a duplicate of pf,
// then duplicates of files. Writing the memfd is the costly part of a
// large publish (pwrite: 13 ms for 64 MiB here), and it runs on the
// publisher's goroutine, holding no lock.
func payloadFDs(data []byte, pf *os.File, files []*os.File) (*dupFDs, error) {
	if pf == nil {
		mf, err := memfd.FromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("bus: payload of %d bytes into a memfd: %w", len(data), err)
		}
		defer mf.Close() // the duplicate below is the connection's
		pf = mf
	}
	fd, err := dupFile(pf)
	if err != nil {
		return nil, fmt.Errorf("bus: duplicating the payload's memfd: %w", err)
	}
	return dupFilesAfter(append(make([]int, 0, 1+len(files)), fd), files)
}

// payloadSection is the payload section of a PUB whose payload is in a
// memfd: its size, big-endian.
func payloadSection(size int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, wire.PayloadFDLen), uint64(size))
}

// fdPayload is a received payload in a memfd: the MSG's first descriptor
// and the size its payload section announced. Reader-owned.
type fdPayload struct {
	f    *os.File // nil once a receiver has taken it
	size int64
}

// close closes the memfd unless a receiver took it; pl may be nil.
func (pl *fdPayload) close() {
	if pl != nil && pl.f != nil {
		pl.f.Close()
		pl.f = nil
	}
}

// takePayload splits a MSG's payload memfd off its files, if its payload
// is in one. A MSG that says so but has no descriptor, or a payload
// section other than the 8-byte size, breaks the protocol: the
// connection cannot go on (its files are closed).
func takePayload(f *wire.Frame, files []*os.File) (*fdPayload, []*os.File, error) {
	if f.Flags&wire.MsgPayloadFD == 0 {
		return nil, files, nil
	}
	if len(files) == 0 || len(f.Payload) != wire.PayloadFDLen {
		closeAll(files)
		return nil, nil, wire.Errorf(wire.CodeBadFrame, "MSG with its payload in a memfd has %d descriptors and a payload section of %d bytes; want at least 1 and %d",
			len(files), len(f.Payload), wire.PayloadFDLen)
	}
	size := binary.BigEndian.Uint64(f.Payload)
	pl := &fdPayload{f: files[0], size: int64(min(size, math.MaxInt64))} // a size past int64 fails the check as it should
	if files = files[1:]; len(files) == 0 {
		files = nil
	}
	return pl, files, nil
}

// checkPayload verifies a received payload memfd once for every receiver:
// a memfd, sealed, of the size announced. A bad one drops the message:
// its descriptors are closed, and each subscription it was for (one, if
// not nil, else members) hears of it through the error handler. The
// connection goes on: the sender, not the broker, is at fault.
func (c *Conn) checkPayload(pl *fdPayload, f *wire.Frame, one *Subscription, members []*Subscription, files []*os.File) bool {
	err := verifyFD(pl.f, pl.size)
	if err == nil {
		return true
	}
	closeAll(files)
	pl.close()
	if one != nil {
		members = []*Subscription{one}
	}
	for _, s := range members {
		c.badPayload(s, f, err)
	}
	return false
}

// verifyFD is memfd.Verify on f's descriptor.
func verifyFD(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var verr error
	if err := rc.Control(func(fd uintptr) { verr = memfd.Verify(int(fd), size) }); err != nil {
		return err
	}
	return verr
}

// badPayload tells the error handler that s lost the message f because of
// its payload descriptor; a reply's request fails with the error instead,
// at once.
func (c *Conn) badPayload(s *Subscription, f *wire.Frame, err error) {
	err = fmt.Errorf("%w: message to %q for subscription %q dropped: %w", ErrBadPayload, f.Topic, s.pattern, err)
	if s.inbox != nil && s.inbox.failReply(string(f.Topic), err) {
		return
	}
	c.cb.push(s, err)
}

// payloadMsg returns s's Msg for a message whose payload is in the memfd
// pl, checked by checkPayload: its bytes read with pread into new memory
// (with ReuseMessages, into a buffer its queue kept from an earlier
// payload, if one is large enough), or with PayloadFiles the memfd itself, pl's own descriptor
// if mayKeep, else a duplicate. nil if s loses the message: its error was
// reported, or, when s's queue has no room for it, it is counted and
// reported with the queue's drops, unread.
func (c *Conn) payloadMsg(s *Subscription, f *wire.Frame, pl *fdPayload, mayKeep bool) *Msg {
	if s.inbox == nil && !s.q.fits(int(min(pl.size, math.MaxInt)), c.opts.subMsgs, c.opts.subBytes) {
		// Dropped before it is read: see msgQueue.fits.
		if s.q.refuse() {
			c.ready = append(c.ready, s)
		}
		return nil
	}
	var data []byte
	var pf *os.File
	switch {
	case !s.payloadFiles:
		if limit := c.opts.largeLimit; pl.size > limit {
			c.badPayload(s, f, fmt.Errorf("%w: %d bytes; this connection reads at most %d (WithLargePayloadLimit)", ErrTooLarge, pl.size, limit))
			return nil
		}
		var err error
		// checkPayload verified pl once for every receiver. Under
		// ReuseMessages Data is lent, like every Data then: into a buffer
		// an earlier payload used, whose pages are in already.
		if s.reuse {
			data = s.q.takeBig(int(pl.size))
		}
		if data == nil {
			data = memfd.NewBuffer(int(pl.size))
		}
		if err = memfd.ReadInto(pl.f, data); err != nil {
			c.badPayload(s, f, err)
			return nil
		}
	case mayKeep:
		pf, pl.f = pl.f, nil
	default:
		fd, err := dupFile(pl.f)
		if err != nil {
			c.lostOne(s, "its own duplicate of the payload's memfd could not be made: "+err.Error())
			return nil
		}
		pf = os.NewFile(uintptr(fd), "bus-payload")
	}
	var m *Msg
	if s.reuse {
		m = s.lend(nil)
	} else {
		m = c.newMsg(nil)
	}
	m.Data, m.PayloadFile, m.viaFD = data, pf, true
	if s.reuse && data != nil {
		m.big = data
	}
	if pf != nil {
		m.held = int(pl.size)
	}
	return m
}

// pendingPayload is a payload memfd whose PUB waits in the output: where
// the PUB starts in it, and the payload's size.
type pendingPayload struct {
	pos  int64
	size int
}

// queuedPayloadLocked counts a payload memfd of size bytes whose PUB is
// about to be appended to the output. Under c.mu.
func (c *Conn) queuedPayloadLocked(size int64) {
	c.fdMarks = append(c.fdMarks, pendingPayload{pos: c.out.End(), size: int(size)})
	c.fdPending += int(size)
}

// payloadsTakenLocked stops counting the payload memfds whose PUBs the
// writer has taken from the output. Under c.mu.
func (c *Conn) payloadsTakenLocked() {
	start := c.out.End() - int64(c.out.Len()) // where what still waits begins
	i := 0
	for i < len(c.fdMarks) && c.fdMarks[i].pos < start {
		c.fdPending -= c.fdMarks[i].size
		i++
	}
	if i > 0 {
		c.fdMarks = c.fdMarks[:copy(c.fdMarks, c.fdMarks[i:])]
	}
}
