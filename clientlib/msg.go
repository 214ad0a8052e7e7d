package clientlib

import (
	"context"
	"errors"
	"os"
)

// Origin identifies the publisher of a received message. The broker takes
// it from the publisher's socket credentials, so it cannot be forged.
type Origin struct {
	Conn uint64 // the publisher's connection id on this bus
	PID  int
	UID  int
	GID  int
}

// Msg is a message, to publish or as received. A received Msg and its Data
// belong to the receiver, unless its subscription was made with
// ReuseMessages; they share memory with neighbouring messages (see
// reader.go), which only means that keeping one for long keeps a few
// kilobytes alive.
type Msg struct {
	Topic  string
	Reply  string // where a reply should go; "" if none is wanted
	Header Header // optional key/value fields, in order; keys may repeat
	Data   []byte
	// Files travel as open descriptors. On publish the caller keeps
	// ownership: the connection duplicates them. On receipt the receiver
	// owns them and must close them (CloseFiles).
	Files []*os.File
	// PayloadFile is a payload in a sealed memfd, in place of Data (see
	// "Large payloads" in the package doc). On publish it is the caller's:
	// a memfd it made and sealed (memfd.New and Writer.Seal,
	// memfd.FromReader), checked with memfd.Verify before the message is
	// queued (else an error matching ErrBadPayload; Data must then be
	// empty); the connection duplicates it, and the caller keeps
	// ownership. On receipt it is nil, unless the subscription was made
	// with PayloadFiles: then it is the checked memfd, Data is nil, and
	// the receiver owns it (CloseFiles closes it).
	PayloadFile *os.File
	// Origin is set on received messages only.
	Origin Origin

	sub   *Subscription
	sess  *session // the session it arrived on: a reply goes on it or not at all
	own   []byte   // a lent Msg's payload buffer, kept for its next message (see ReuseMessages)
	big   []byte   // a lent Msg's buffer for a payload that came in a memfd, given back to its queue (msgQueue.keepBig)
	held  int      // the size of a received PayloadFile: bytes queued, as Data's are
	viaFD bool     // received with its payload in a memfd (see msgQueue.flush)
	// retained: it is a retained value from the broker's store, not a
	// live publish (see Retained).
	retained bool
}

// Subscription returns the subscription a received message arrived on.
func (m *Msg) Subscription() *Subscription { return m.sub }

// Respond publishes data (and files) to the message's reply topic. Someone is
// waiting for it, so it is written at once when the socket takes it, not
// left for the connection's writer goroutine. Only the connection a request
// reached may answer it: if that connection was lost since (even if the
// Conn has reconnected), Respond returns an error matching
// ErrConnectionLost.
func (m *Msg) Respond(data []byte, files ...*os.File) error {
	if err := m.canRespond(); err != nil {
		return err
	}
	return m.sub.conn.publishMsg(context.Background(), &Msg{Topic: m.Reply, Data: data, Files: files}, true, m.sess)
}

// RespondMsg answers the message with r: its header, data and files, sent
// to the message's reply topic (r.Topic and r.Reply are ignored).
func (m *Msg) RespondMsg(r *Msg) error {
	if err := m.canRespond(); err != nil {
		return err
	}
	reply := *r
	reply.Topic, reply.Reply = m.Reply, ""
	return m.sub.conn.publishMsg(context.Background(), &reply, true, m.sess)
}

func (m *Msg) canRespond() error {
	if m.Reply == "" {
		return ErrNoReply
	}
	if m.sub == nil {
		return errors.New("bus: Respond on a message that was not received")
	}
	return nil
}

// CloseFiles closes every file the message carries, its PayloadFile
// included, and returns the first error.
func (m *Msg) CloseFiles() error {
	var first error
	for _, f := range m.Files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	if m.PayloadFile != nil {
		if err := m.PayloadFile.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
