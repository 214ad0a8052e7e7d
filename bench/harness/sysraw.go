package harness

import (
	"cmp"
	"context"
	"os"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// rawClient speaks bare PUB frames over Unix sockets: to a subscriber
// directly, or to the relay. It has no subscriptions: whatever reaches the
// socket is for it. Writes are batched, with the descriptors of a batch
// combined in one sendmsg, the best a sender can do.
type rawClient struct {
	conns []*unixsock.Conn // one per peer: several for a direct fan-out
	out   []byte           // frames waiting for flush
	fds   []int            // their descriptors, sent with the batch's first byte
	in    *wire.Reader
	lim   wire.Limits
}

const rawBatch = 64 << 10

// rawOpts are busd's own socket options (bus.ConnOptions), so the limit is
// measured with the same kernel buffers as busd.
var rawOpts = []unixsock.ConnOption{unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage), unixsock.WithSendBuffer(wire.SendBuffer)}

func dialRaw(addrs ...string) (*rawClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &rawClient{lim: wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 20, MaxFDs: wire.MaxFDsPerFrame}}
	for _, a := range addrs {
		c, err := unixsock.Dial(ctx, a, rawOpts...)
		if err != nil {
			return nil, err
		}
		r.conns = append(r.conns, c)
	}
	r.in = wire.NewReader(r.conns[0], &r.lim)
	return r, nil
}

func (r *rawClient) publish(topic string, data []byte, files []*os.File) error {
	if len(r.fds)+len(files) > unixsock.MaxFDsPerMessage {
		if err := r.flush(); err != nil {
			return err
		}
	}
	for _, f := range files {
		r.fds = append(r.fds, int(f.Fd()))
	}
	r.out = wire.AppendPub(r.out, topic, "", nil, data, len(files))
	if len(r.out) >= rawBatch {
		return r.flush()
	}
	return nil
}

// flush writes the batch to every peer, its descriptors with its first
// byte, which is at or before each of their frames' first bytes.
func (r *rawClient) flush() error {
	for _, c := range r.conns {
		if _, err := c.WriteWithFDs(r.out, r.fds); err != nil {
			return err
		}
	}
	r.out, r.fds = r.out[:0], r.fds[:0]
	return nil
}

func (r *rawClient) subscribe(_ string, fn func([]byte, []*os.File)) error {
	go func() {
		var buf []byte
		for {
			f, err := r.in.Next(nil)
			if err != nil {
				return
			}
			var files []*os.File
			if f.NFDs > 0 {
				fds, err := r.conns[0].TakeFDs(int(f.NFDs))
				if err != nil {
					return
				}
				for _, fd := range fds {
					files = append(files, os.NewFile(uintptr(fd), "fd"))
				}
			}
			// A copy, as a client hands out, into one buffer, as busd's
			// ReuseMessages does: the limit allocates nothing per message.
			buf = append(buf[:0], f.Payload...)
			fn(buf, files)
		}
	}()
	return nil
}

func (r *rawClient) request(topic string, data []byte) ([]byte, error) {
	if err := r.publish(topic, data, nil); err != nil {
		return nil, err
	}
	if err := r.flush(); err != nil {
		return nil, err
	}
	f, err := r.in.Next(nil)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), f.Payload...), nil
}

// pipeline keeps inflight requests on the socket: it sends that many, then
// one more for every reply it reads. Replies come back in order over the
// one socket, so a FIFO of send times gives each request its round trip.
// The requests a read batch's replies release are written together once the
// batch is consumed, as serve answers them, so the limit pays one write per
// batch rather than per request; each is timed from when it was queued.
func (r *rawClient) pipeline(topic string, data []byte, count, inflight int) ([]float64, error) {
	lat := make([]float64, 0, count)
	sent := make([]time.Time, 0, count) // of request i; lat holds the replied ones
	send := func() {
		sent = append(sent, time.Now())
		r.out = wire.AppendPub(r.out, topic, "", nil, data, 0)
	}
	for range min(inflight, count) {
		send()
	}
	var werr error
	flush := func() {
		if len(r.out) > 0 && werr == nil {
			werr = r.flush()
		}
	}
	flush()
	for len(lat) < count {
		if _, err := r.in.Next(flush); err != nil || werr != nil {
			return nil, cmp.Or(werr, err)
		}
		lat = append(lat, sinceUs(sent[len(lat)]))
		if len(sent) < count {
			send()
		}
	}
	return lat, nil
}

// serve echoes every frame back, flushing once per read batch.
func (r *rawClient) serve(string) error {
	go func() {
		for {
			f, err := r.in.Next(func() { r.flush() })
			if err != nil {
				return
			}
			r.out = wire.AppendPub(r.out, string(f.Topic), "", nil, f.Payload, 0)
		}
	}()
	return nil
}

func (r *rawClient) close() {
	for _, c := range r.conns {
		c.Close()
	}
}
