package clientlib

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock/memfd"
	"golang.org/x/sys/unix"
)

// Messages published while reconnecting. The broker they were meant for
// is gone, and the subscribers of the one they go to come back at their
// own pace: a message sent as soon as this Conn is back may find nobody
// yet. So, while reconnecting, Publish keeps a copy of each message (not
// yet encoded: whether it may ask for a receipt depends on the next
// broker), and the reconnect encodes them after the subscriptions. If the
// broker announces receipts (INFO "receipts") and the caller has an error
// handler to hear of them, each PUB carries an id that asks for a RECEIPT
// and its copy is kept until the receipt comes, in a FIFO: the broker
// handles a connection's frames in order, so the receipts come in the
// order of the PUBs. One that reached no subscription, or whose
// connection ended before its receipt came, goes to the error handler as
// an *UndeliveredError carrying the message, so that none is lost without
// a word: the caller may publish it again.

// replayOverhead is what a kept message costs beyond its bytes (the
// record and the allocator's rounding), counted in the reconnect buffer so
// that its bound is the memory really held.
const replayOverhead = 64

// UndeliveredError reports a message published while the Conn was
// reconnecting that did not reach anyone, or may not have. It goes to the
// error handler (WithErrorHandler), with a nil Subscription; only a Conn
// with an error handler keeps what it takes to report it.
type UndeliveredError struct {
	// Msg is the message as published: Topic, Reply, Header and Data. Its
	// Files are not kept (they went to the broker, which closed them).
	Msg *Msg
	// Dropped is how many subscriptions matched it but had no room for
	// it: each lost it as a slow consumer, reported to its subscriber by
	// a gap notice, or by the end of its connection if its policy is
	// disconnect. 0 when none matched.
	Dropped int
	// Err is the cause: ErrNotDelivered (the broker's receipt said so; if
	// the broker refused the message, its *ServerError reached the
	// handler just before); ErrConnectionLost (the connection dropped
	// again before the receipt came: it may or may not have been
	// delivered); an error matching ErrTooLarge (its payload went in a
	// memfd, which the broker reconnected to does not take that large, or
	// at all: it was not sent); or the error that ended the Conn first
	// (ErrClosed after Close).
	Err error
}

// Error says which message, what became of it and what to do.
func (e *UndeliveredError) Error() string {
	if e.Err == ErrNotDelivered {
		room := ""
		if e.Dropped > 0 {
			room = fmt.Sprintf(" (%d subscriptions matched but had no room for it)", e.Dropped)
		}
		return fmt.Sprintf("bus: message to %q, published while reconnecting, reached no subscriber%s; publish it again if it still matters", e.Msg.Topic, room)
	}
	return fmt.Sprintf("bus: message to %q, published while reconnecting, is not confirmed (%v): it may or may not have been delivered", e.Msg.Topic, e.Err)
}

// Unwrap returns the cause, so that errors.Is(err, ErrNotDelivered) and
// errors.Is(err, ErrConnectionLost) tell the two apart.
func (e *UndeliveredError) Unwrap() error { return e.Err }

// replayed is a message published while reconnecting: its sections back
// to back in one allocation, and its files until they are handed to the
// output.
type replayed struct {
	msg      []byte // topic, reply, headers, data
	topicLen uint16
	replyLen uint16
	hdrLen   uint32
	dups     *dupFDs
	id       uint32 // the id its PUB carried; 0 before it was encoded
	flags    uint8  // its PUB's flags (wire.PubRetain, wire.PubPayloadFD)
	// payload is, for a payload in a memfd (flags has PubPayloadFD), a
	// descriptor of the memfd kept until the receipt, from which report
	// reads the bytes back; nil if no report can be made (no error
	// handler) or the duplicate failed.
	payload *os.File
}

func (rp *replayed) topic() string { return string(rp.msg[:rp.topicLen]) }
func (rp *replayed) reply() string {
	return string(rp.msg[rp.topicLen : rp.topicLen+rp.replyLen])
}
func (rp *replayed) hdrs() wire.Headers {
	at := uint32(rp.topicLen) + uint32(rp.replyLen)
	return wire.Headers(rp.msg[at : at+rp.hdrLen])
}
func (rp *replayed) data() []byte {
	return rp.msg[uint32(rp.topicLen)+uint32(rp.replyLen)+rp.hdrLen:]
}

// fdSize is the size of a payload that is in a memfd, else 0.
func (rp *replayed) fdSize() int64 {
	if rp.flags&wire.PubPayloadFD == 0 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(rp.data()))
}

// cost is what keeping rp costs the reconnect buffer.
func (rp *replayed) cost() int {
	return replayCost(rp.topic(), rp.reply(), rp.hdrs(), rp.data(), rp.fdSize())
}

// replayCost is what keeping a message costs the reconnect buffer;
// fdSize is the size of its payload if that is in a memfd (data is then
// the 8-byte size): the memfd is this process's memory for as long as it
// is kept, and counts as the bytes would.
func replayCost(topic, reply string, hdrs wire.Headers, data []byte, fdSize int64) int {
	return len(topic) + len(reply) + len(hdrs) + len(data) + int(fdSize) + replayOverhead
}

// bufferLocked keeps a message published while reconnecting, with its
// duplicated files; mayQueueLocked has checked it fits. Under c.mu.
func (c *Conn) bufferLocked(topic, reply string, hdrs wire.Headers, data []byte, dups *dupFDs, flags uint8) {
	msg := make([]byte, 0, len(topic)+len(reply)+len(hdrs)+len(data))
	msg = append(append(append(append(msg, topic...), reply...), hdrs...), data...)
	c.replays = append(c.replays, replayed{
		msg: msg, topicLen: uint16(len(topic)), replyLen: uint16(len(reply)), hdrLen: uint32(len(hdrs)), dups: dups, flags: flags,
	})
	rp := &c.replays[len(c.replays)-1]
	if flags&wire.PubPayloadFD != 0 && c.opts.onErrorSet {
		if fd, err := unix.FcntlInt(uintptr(dups.fds[0]), unix.F_DUPFD_CLOEXEC, 0); err == nil {
			rp.payload = os.NewFile(uintptr(fd), "bus-payload")
		}
	}
	c.replayMem += rp.cost()
	if dups != nil {
		c.fds += len(dups.fds)
	}
}

// replayLocked encodes the messages kept while reconnecting into the
// output of the session info answered, after the SUBs, and returns how
// many bytes that is. With receipts it numbers them and keeps the copies
// until their receipts; else it lets them go. Under c.mu; the output is
// empty (nothing else is queued while reconnecting).
func (c *Conn) replayLocked(info *wire.Info) int {
	receipts := info.Receipts && c.opts.onErrorSet
	c.dropUnsendableLocked(info)
	for i := range c.replays {
		rp := &c.replays[i]
		nfds := 0
		if rp.dups != nil {
			nfds = len(rp.dups.fds)
			c.out.AddFDs(rp.dups.fds, rp.dups) // c.fds counts them already
			rp.dups = nil
		}
		if receipts {
			c.nextReplay++
			if c.nextReplay == 0 {
				c.nextReplay = 1 // 0 asks for no receipt
			}
			rp.id = c.nextReplay
		}
		c.appendPubLocked(rp.topic(), rp.reply(), rp.hdrs(), rp.data(), nfds, rp.id, rp.flags)
	}
	c.seq += uint64(len(c.replays))
	if !receipts {
		for i := range c.replays {
			c.replays[i].release()
		}
		c.replays, c.replayMem = nil, 0
	}
	return c.out.Len()
}

// dropUnsendableLocked reports, and does not send, the kept messages
// whose payload memfd the broker of info does not take (it announces a
// smaller max_fd_payload, or none): sent, such a PUB would be refused, or,
// by a broker that predates memfd payloads, end the connection for good
// as a protocol error. Under c.mu.
func (c *Conn) dropUnsendableLocked(info *wire.Info) {
	keep := c.replays[:0]
	for _, rp := range c.replays {
		if rp.flags&wire.PubPayloadFD == 0 || uint64(rp.fdSize()) <= info.MaxFDPayload {
			keep = append(keep, rp)
			continue
		}
		c.replayMem -= rp.cost()
		rp.dups.Release()
		c.fds -= len(rp.dups.fds)
		if c.opts.onErrorSet {
			c.cb.push(nil, rp.report(fmt.Errorf("%w: the broker reconnected to takes payloads in a memfd of at most %d bytes; this one has %d",
				ErrTooLarge, info.MaxFDPayload, rp.fdSize()), 0))
		}
		rp.release()
	}
	clear(c.replays[len(keep):])
	c.replays = keep
}

// receipt handles the broker's RECEIPT for the PUB with id id: the first
// kept message, as receipts come in order.
func (c *Conn) receipt(id uint32, payload []byte) error {
	r, err := wire.DecodeReceipt(payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rs.lost {
		return nil // its message was reported when the session was
	}
	if len(c.replays) == 0 || c.replays[0].id != id {
		return wire.Errorf(wire.CodeBadFrame, "RECEIPT %d answers no PUB waiting for one", id)
	}
	rp := c.replays[0]
	c.replays = c.replays[1:]
	c.replayMem -= rp.cost()
	if len(c.replays) == 0 {
		c.replays, c.replayMem = nil, 0 // let the backing array go
	}
	if r.Delivered == 0 {
		// Under c.mu, as forgetReplaysLocked pushes: reports keep the
		// order of the messages.
		c.cb.push(nil, rp.report(ErrNotDelivered, int(r.Dropped)))
	}
	rp.release()
	return nil
}

// forgetReplaysLocked reports every message kept, in order, as not
// confirmed, with cause, and releases their files if it still holds them.
// Under c.mu.
func (c *Conn) forgetReplaysLocked(cause error) {
	for i := range c.replays {
		rp := &c.replays[i]
		if rp.dups != nil {
			rp.dups.Release()
			c.fds -= len(rp.dups.fds)
		}
		if c.opts.onErrorSet {
			c.cb.push(nil, rp.report(cause, 0))
		}
		rp.release()
	}
	c.replays, c.replayMem = nil, 0
}

// report turns rp into the error the handler gets. A payload that went in
// a memfd is read back into Data: a copy made only for a message that went
// wrong.
func (rp *replayed) report(cause error, dropped int) *UndeliveredError {
	m := &Msg{Topic: rp.topic(), Reply: rp.reply(), Header: decodeHeader(rp.hdrs()), Data: rp.data()}
	if rp.flags&wire.PubPayloadFD != 0 {
		m.Data = nil
		if rp.payload != nil {
			m.Data, _ = memfd.ReadPayload(rp.payload, rp.fdSize()) // a memfd this process made and sealed
		}
	}
	return &UndeliveredError{Msg: m, Dropped: dropped, Err: cause}
}

// release closes the memfd kept for report, if any.
func (rp *replayed) release() {
	if rp.payload != nil {
		rp.payload.Close()
		rp.payload = nil
	}
}
