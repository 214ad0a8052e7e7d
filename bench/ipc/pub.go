package ipc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock"
)

// runPub connects, says ready, waits for "go" on stdin, sends s.count
// messages, and waits until they have left (busd: a Flush round trip).
func runPub(s spec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload := make([]byte, s.size)
	var file []*os.File
	if s.fds {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		file = []*os.File{f}
	}
	var send func() error
	var finish func() error
	if s.mode == "direct" {
		conn, err := unixsock.Dial(ctx, s.path)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(conn, 64<<10)
		var frame []byte
		send = func() error {
			frame = wire.AppendPub(frame[:0], "bench.x", "", nil, payload, len(file))
			if file == nil {
				_, err := w.Write(frame)
				return err
			}
			if err := w.Flush(); err != nil { // descriptors go with the frame's first byte
				return err
			}
			_, err := conn.WriteWithFDs(frame, []int{int(file[0].Fd())})
			return err
		}
		finish = w.Flush
	} else {
		c, err := clientlib.Connect(ctx, clientlib.WithSocket(s.path))
		if err != nil {
			return err
		}
		send = func() error { return c.Publish("bench.x", payload, file...) }
		finish = func() error {
			fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return c.Flush(fctx)
		}
	}
	fmt.Println("ready")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("waiting for go: %q, %v", line, err)
	}
	for range s.count {
		if err := send(); err != nil {
			return err
		}
	}
	return finish()
}
