package clientlib

import (
	"context"
	"fmt"
	"os"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
	"golang.org/x/sys/unix"
)

// Publish sends data to topic, with files as open descriptors. The
// connection duplicates the files' descriptors, so the caller may close them
// as soon as Publish returns. data of any size up to the broker's limits
// goes: over the large-payload threshold (WithLargePayloadThreshold) it is
// copied into a sealed memfd, sent in its place (see "Large payloads" in
// the package doc), and the caller may reuse data as soon as Publish
// returns all the same. Publish returns once the message is queued for
// the writer; use Flush to know the broker has it. It waits only while the
// connection's pending output is at its limit (WithPendingLimit), and at
// most until the connection ends, which it does if the broker accepts
// nothing for the write timeout (WithWriteTimeout); PublishContext bounds
// that wait with a context.
func (c *Conn) Publish(topic string, data []byte, files ...*os.File) error {
	return c.publish(context.Background(), topic, "", nil, data, files, nil, false, nil, 0)
}

// PublishContext is Publish, waiting for room in the pending limit only
// until ctx ends; it then returns an error matching ctx's, and nothing is
// sent. ctx is looked at only if there is a wait: a message that fits is
// queued whatever the state of ctx.
func (c *Conn) PublishContext(ctx context.Context, topic string, data []byte, files ...*os.File) error {
	return c.publish(ctx, topic, "", nil, data, files, nil, false, nil, 0)
}

// PublishMsg sends m: its topic, reply topic, header, data (or
// PayloadFile) and files. It waits like Publish.
func (c *Conn) PublishMsg(m *Msg) error { return c.publishMsg(context.Background(), m, false, nil) }

// PublishMsgContext is PublishMsg, waiting for room in the pending limit
// only until ctx ends, like PublishContext.
func (c *Conn) PublishMsgContext(ctx context.Context, m *Msg) error {
	return c.publishMsg(ctx, m, false, nil)
}

// publishMsg is PublishMsg; with now it also writes the message from the
// calling goroutine if the socket takes it at once, for answers someone is
// waiting on. With pin not nil the message goes on that session only (see
// publish).
func (c *Conn) publishMsg(ctx context.Context, m *Msg, now bool, pin *session) error {
	var hdrs wire.Headers
	if len(m.Header) > 0 {
		// Encoded on the stack unless large: publish copies what it
		// queues, so a typed message's Content-Type costs no allocation.
		var buf [256]byte
		var err error
		if hdrs, err = encodeHeader(buf[:0], m.Header); err != nil { // in the caller's order, as the protocol keeps it
			return err
		}
	}
	return c.publish(ctx, m.Topic, m.Reply, hdrs, m.Data, m.Files, m.PayloadFile, now, pin, 0)
}

// publish queues a PUB, waiting for room until ctx ends. While the
// connection is reconnecting it keeps the message for the next one,
// within the reconnect buffer's bound, unless pin is set: a request or a
// reply belongs to the session pin and fails with ErrConnectionLost once
// that is lost. flags are the PUB's (wire.PubRetain). pf is a sealed
// memfd holding the payload, or nil (Msg.PayloadFile). A payload that goes
// in a memfd (largepayload.go) is written into one here, before c.mu is
// taken: then data is its 8-byte size, and the memfd the first descriptor.
func (c *Conn) publish(ctx context.Context, topic, reply string, hdrs wire.Headers, data []byte, files []*os.File, pf *os.File, now bool, pin *session, flags uint8) error {
	if err := c.checkPub(topic, reply, hdrs, files); err != nil {
		return err
	}
	viaFD, size, err := c.planPayload(topic, data, pf, len(files), flags)
	if err != nil {
		return err
	}
	var dups *dupFDs
	var fdSize int64 // the bytes of a payload in a memfd, else 0
	switch {
	case viaFD:
		if dups, err = payloadFDs(data, pf, files); err != nil {
			return err
		}
		data, fdSize, flags = payloadSection(size), size, flags|wire.PubPayloadFD
	case pf != nil: // inline after all: see planPayload
		if data, err = readPayloadFile(pf, size); err != nil {
			return err
		}
	}
	if !viaFD && len(files) > 0 {
		if dups, err = dupFiles(files); err != nil {
			return err
		}
	}
	nfds := 0
	if dups != nil {
		nfds = len(dups.fds)
	}
	c.mu.Lock()
	if err := c.waitSpaceLocked(ctx, nfds); err != nil {
		c.mu.Unlock()
		if dups != nil {
			dups.Release()
		}
		if err == ctx.Err() { // not the connection's end
			return fmt.Errorf("bus: publish to %q: waiting for room in the pending limit: %w", topic, err)
		}
		return err
	}
	if pin != nil || c.status != Connected { // the common case, checked inline
		if err := c.mayQueueLocked(topic, reply, hdrs, data, fdSize, nfds, pin); err != nil {
			c.mu.Unlock()
			if dups != nil {
				dups.Release()
			}
			return err
		}
		if c.status != Connected { // reconnecting: kept for the next connection (replay.go)
			c.bufferLocked(topic, reply, hdrs, data, dups, flags)
			c.mu.Unlock()
			return nil
		}
	}
	if dups != nil {
		c.out.AddFDs(dups.fds, dups)
		c.fds += len(dups.fds)
	}
	if fdSize > 0 {
		c.queuedPayloadLocked(fdSize)
	}
	wake := c.out.Len() == 0 && !now
	if wake {
		c.wake()
	}
	c.appendPubLocked(topic, reply, hdrs, data, nfds, 0, flags)
	c.seq++
	c.counts.countOut(topic, reply, hdrs, data)
	if reply != "" && pin != nil {
		c.inbox.bindSeq(c.seq, reply)
	}
	if !now {
		c.mu.Unlock()
		return nil
	}
	s, live := c.sess, c.status == Connected
	c.mu.Unlock()
	if live && !s.send.TryFlush() {
		c.wake()
	}
	return nil
}

// mayQueueLocked says whether a PUB may be queued now: on a live
// session, yes; on a pinned session that was lost, no
// (ErrConnectionLost); while reconnecting, if its copy fits in what is
// left of the reconnect buffer (else ErrReconnectBufferFull). fdSize is
// the size of a payload in a memfd, held while it is kept.
func (c *Conn) mayQueueLocked(topic, reply string, hdrs wire.Headers, data []byte, fdSize int64, nfds int, pin *session) error {
	switch {
	case pin != nil && (pin != c.sess || pin.lost):
		return fmt.Errorf("bus: publish to %q: %w", topic, ErrConnectionLost)
	case c.status == Connected:
		return nil
	case c.replayMem+replayCost(topic, reply, hdrs, data, fdSize) > c.opts.reconnectBuf:
		return fmt.Errorf("%w: publish to %q: %d bytes buffered, the bound is %d (WithReconnectBuffer)",
			ErrReconnectBufferFull, topic, c.replayMem, c.opts.reconnectBuf)
	case nfds > 0 && c.fds+nfds > c.opts.maxFDs:
		return fmt.Errorf("%w: publish to %q: %d descriptors buffered, the bound is %d",
			ErrReconnectBufferFull, topic, c.fds, c.opts.maxFDs)
	}
	return nil
}

// appendPubLocked encodes a PUB into the output; id is 0, or the number
// that asks the broker for a RECEIPT; flags are the PUB's.
func (c *Conn) appendPubLocked(topic, reply string, hdrs wire.Headers, data []byte, nfds int, id uint32, flags uint8) {
	size := wire.HeaderLen + len(topic) + len(reply) + len(hdrs) + len(data)
	if size > wire.ChunkSize {
		appendLargePub(&c.out, topic, reply, hdrs, data, nfds, id, flags)
		return
	}
	buf := c.out.Reserve(size) // the chunk being filled: the frame goes after what it has
	at := len(buf)
	buf = wire.AppendPub(buf, topic, reply, hdrs, data, nfds)
	if id != 0 {
		wire.SetID(buf[at:], id)
	}
	buf[at+2] = flags
	c.out.Commit(buf)
}

// checkPub applies the grammar and the broker's limits before anything is
// queued, so mistakes come back from Publish rather than later as ERR.
// The payload's size is planPayload's to check: over max_payload it may
// still go, in a memfd.
func (c *Conn) checkPub(topic, reply string, hdrs wire.Headers, files []*os.File) error {
	if last := c.validTopic.Load(); last == nil || *last != topic {
		if err := topics.ValidTopic(topic); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidTopic, err)
		}
		valid := topic             // a copy: taking topic's own address would move it to the heap on every call
		c.validTopic.Store(&valid) // a publisher usually repeats its topic
	}
	if reply != "" {
		if err := topics.ValidTopic(reply); err != nil {
			return fmt.Errorf("%w: reply %w", ErrInvalidTopic, err)
		}
	}
	lim := c.info.Load()
	switch {
	case len(hdrs) > int(lim.MaxHeaders):
		return fmt.Errorf("%w: headers of %d bytes; the bus takes %d", ErrTooLarge, len(hdrs), lim.MaxHeaders)
	case len(files) > int(lim.MaxFDs):
		return fmt.Errorf("%w: %d files; the bus takes %d per message", ErrTooManyFiles, len(files), lim.MaxFDs)
	}
	return nil
}

// dupFDs are duplicates of a message's descriptors, owned by the
// connection until the writer has sent them.
type dupFDs struct{ fds []int }

func dupFiles(files []*os.File) (*dupFDs, error) {
	return dupFilesAfter(make([]int, 0, len(files)), files)
}

// dupFilesAfter is dupFiles with fds, descriptors the duplicates own
// already, first: closed with them on failure.
func dupFilesAfter(fds []int, files []*os.File) (*dupFDs, error) {
	d := &dupFDs{fds: fds}
	for i, f := range files {
		fd, err := dupFile(f)
		if err != nil {
			d.Release()
			return nil, fmt.Errorf("bus: duplicating file %d (%s): %w", i, f.Name(), err)
		}
		d.fds = append(d.fds, fd)
	}
	return d, nil
}

// Release closes the duplicates once sent or dropped.
func (d *dupFDs) Release() {
	for _, fd := range d.fds {
		unix.Close(fd)
	}
}

// dupFile duplicates f's descriptor through SyscallConn, unlike f.Fd(),
// which would switch a pollable file (a pipe, a socket) to blocking mode
// under its owner.
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(raw uintptr) {
		fd, derr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	return fd, derr
}

// appendLargePub queues a PUB larger than a chunk, copied into as many
// chunks as it takes rather than into a buffer of its own size: no
// allocation per message, and memory the connection has used before.
// id is the PUB's id: 0, or the number that asks for a RECEIPT.
func appendLargePub(o *wire.Outbox, topic, reply string, hdrs wire.Headers, data []byte, nfds int, id uint32, flags uint8) {
	h := wire.Header{
		Op: wire.OpPub, Flags: flags, NFDs: uint8(nfds), ID: id,
		TopicLen: uint16(len(topic)), ReplyLen: uint16(len(reply)),
		HdrLen: uint32(len(hdrs)), PayloadLen: uint32(len(data)),
	}
	var head [wire.HeaderLen]byte
	o.AppendCopy(wire.AppendFrameHeader(head[:0], &h), []byte(topic), []byte(reply), hdrs, data)
}
