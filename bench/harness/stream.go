package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The stream scenario: one process writes j.Count blocks of j.Size bytes,
// another reads them to the end. busd dials a direct stream through the
// bus (after which the bytes go over a socketpair of their own); busd-topic
// carries them as a topic stream, through the broker; direct is the limit,
// a plain connected Unix socket between the two. Both socket systems keep
// the kernel's default buffers, as a user's program would.

// streamName is the direct stream the scenario dials.
const streamName = "bench"

// runStreamSink reads one stream to its end and reports done.
func runStreamSink(j *job) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var src io.Reader
	switch j.System {
	case "direct":
		if err := os.MkdirAll(filepath.Dir(j.Addr), 0o700); err != nil {
			return err
		}
		l, err := net.Listen("unix", j.Addr)
		if err != nil {
			return err
		}
		defer l.Close()
		ready(false)
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		defer conn.Close()
		src = conn
	case "busd":
		b, err := dialBusd(j.Addr)
		if err != nil {
			return err
		}
		defer b.close()
		l, err := b.c.Listen(streamName)
		if err != nil {
			return err
		}
		defer l.Close()
		if err := b.flush(); err != nil {
			return err
		}
		ready(false)
		sc, err := l.AcceptStream(ctx)
		if err != nil {
			return err
		}
		defer sc.Close()
		src = sc
	case "busd-topic":
		b, err := dialBusd(j.Addr)
		if err != nil {
			return err
		}
		defer b.close()
		r, err := b.c.NewTopicReader(ctx, pubTopic)
		if err != nil {
			return err
		}
		defer r.Close()
		ready(false)
		src = r
	default:
		return fmt.Errorf("no stream for %s", j.System)
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if want := int64(j.Count) * int64(j.Size); n != want {
		return fmt.Errorf("read %d bytes of %d", n, want)
	}
	done(report{})
	return nil
}

// runStreamSource opens the stream, and on "go" writes j.Count blocks of
// j.Size bytes and closes it.
func runStreamSource(j *job) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var b *busdClient
	if j.System != "direct" {
		var err error
		if b, err = dialBusd(j.Addr); err != nil {
			return err
		}
		defer b.close()
	}
	// Opened before "go": the figure is the stream's throughput, not the
	// setting up (a request through the broker for busd).
	var dst io.WriteCloser
	var err error
	switch j.System {
	case "direct":
		dst, err = net.Dial("unix", j.Addrs[0])
	case "busd":
		dst, err = b.c.DialStream(ctx, streamName)
	case "busd-topic":
		dst, err = b.c.NewTopicWriter(pubTopic)
	default:
		err = fmt.Errorf("no stream for %s", j.System)
	}
	if err != nil {
		return err
	}
	if err := ready(true); err != nil {
		dst.Close()
		return err
	}
	block := payloadPattern(j.Size)
	for range j.Count {
		if _, err := dst.Write(block); err != nil {
			dst.Close()
			return err
		}
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if b != nil {
		if err := b.flush(); err != nil { // the topic stream's last messages are out
			return err
		}
	}
	done(report{})
	return nil
}
