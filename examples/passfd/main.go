// Command passfd hands an open file to another process through the bus.
//
// Run a receiver, then a sender, against a running bus (make run):
//
//	go run ./examples/passfd -recv
//	go run ./examples/passfd -send "some text"
//
// The sender writes the text into a memfd, an anonymous in-memory file, and
// publishes the file's descriptor on "passfd.file". The receiver gets its own
// descriptor of the same file and reads the text from it: the bytes never
// travel through the bus, only the open file does.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/busd/busd/clientlib"
	"golang.org/x/sys/unix"
)

func main() {
	recv := flag.Bool("recv", false, "wait for one file and print its content")
	send := flag.String("send", "", "put this text in a memfd and send it")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithName("passfd-example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	switch {
	case *recv:
		err = receive(ctx, c)
	case *send != "":
		err = sendText(ctx, c, *send)
	default:
		err = fmt.Errorf("give -recv or -send TEXT")
	}
	if err != nil {
		log.Fatal(err)
	}
}

func receive(ctx context.Context, c *clientlib.Conn) error {
	sub, err := c.SubscribeSync("passfd.file")
	if err != nil {
		return err
	}
	if err := c.Flush(ctx); err != nil { // subscribed for sure from here on
		return err
	}
	fmt.Fprintln(os.Stderr, "waiting for a file on passfd.file")
	m, err := sub.Next(ctx)
	if err != nil {
		return err
	}
	defer m.CloseFiles()
	if len(m.Files) != 1 {
		return fmt.Errorf("got %d files; want 1", len(m.Files))
	}
	// The descriptor shares its offset with the sender's: read from the start.
	text, err := io.ReadAll(io.NewSectionReader(m.Files[0], 0, 1<<20))
	if err != nil {
		return err
	}
	fmt.Printf("received a file from pid %d: %s\n", m.Origin.PID, text)
	return nil
}

func sendText(ctx context.Context, c *clientlib.Conn, text string) error {
	fd, err := unix.MemfdCreate("passfd", unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		return err
	}
	if err := c.Publish("passfd.file", []byte("a memfd"), f); err != nil {
		return err
	}
	return c.Flush(ctx)
}
