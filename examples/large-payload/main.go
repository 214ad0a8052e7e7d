// Command large-payload sends payloads far larger than a socket buffer
// through the bus, the two ways a publisher can.
//
// Run a receiver, then a sender, against a running bus (make run):
//
//	go run ./examples/large-payload -recv
//	go run ./examples/large-payload -size 64MiB
//
// The sender publishes two payloads of -size bytes. The first is an
// ordinary []byte given to Publish: past a threshold the connection writes
// it into a sealed memfd and sends the descriptor, so the bytes never pass
// through the broker. The second is written in place: NewPayload hands out
// the memory of a memfd, the sender fills it, Seal seals it, and the file
// itself is the payload, with no copy at all on the sender's side. The
// receiver gets both as ordinary Data and prints the size and a checksum
// of each; the sender prints the same for what it sent.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/busd/busd/clientlib"
)

func main() {
	recv := flag.Bool("recv", false, "print the size and checksum of the next two large payloads")
	size := flag.String("size", "64MiB", "size of each payload: bytes, or with a KiB, MiB or GiB suffix")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithName("large-payload-example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if *recv {
		err = receive(ctx, c)
	} else {
		var n int
		if n, err = parseSize(*size); err == nil {
			err = send(ctx, c, n)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

func receive(ctx context.Context, c *clientlib.Conn) error {
	sub, err := c.SubscribeSync("large.>")
	if err != nil {
		return err
	}
	if err := c.Flush(ctx); err != nil { // subscribed for sure from here on
		return err
	}
	fmt.Fprintln(os.Stderr, "waiting for large payloads on large.>")
	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		// Data is memory of our own, read from the memfd with pread: keep
		// it, change it, let the garbage collector have it.
		fmt.Printf("%s: %s\n", m.Topic, summary(m.Data))
	}
	return nil
}

func send(ctx context.Context, c *clientlib.Conn, size int) error {
	// 1. An ordinary slice: Publish sends it in a memfd by itself.
	buf := make([]byte, size)
	fill(buf, 1)
	if err := c.Publish("large.slice", buf); err != nil {
		return err
	}
	fmt.Printf("large.slice: %s\n", summary(buf))

	// 2. Written in place into the memfd that will be sent.
	p, err := c.NewPayload(size)
	if err != nil {
		return err
	}
	fill(p.Bytes(), 2)
	sum := summary(p.Bytes()) // before Seal: the memory is gone after it
	f, err := p.Seal()
	if err != nil {
		p.Close()
		return err
	}
	err = c.PublishMsg(&clientlib.Msg{Topic: "large.inplace", PayloadFile: f})
	f.Close() // the connection keeps its own descriptor until it is sent
	if err != nil {
		return err
	}
	fmt.Printf("large.inplace: %s\n", sum)
	return c.Flush(ctx) // the broker has both before we exit
}

// fill writes a pattern that differs from page to page and payload to
// payload.
func fill(b []byte, seed int) {
	for i := range b {
		b[i] = byte(i*7 + i>>12 + seed)
	}
}

// summary is a payload's size and its SHA-256.
func summary(b []byte) string {
	return fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b))
}

// parseSize parses 123, 4KiB, 64MiB or 1GiB.
func parseSize(s string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("-size %s: want bytes, or a number with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}
