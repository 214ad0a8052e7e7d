// Command streams shows direct streams: connected sockets two processes
// open through the bus and then use on their own. The server listens on
// two stream names: "squares", where it reads numbers and answers their
// squares as typed values (clientlib.MakeFile), and "web", where it serves
// HTTP with the standard library. The client dials both.
//
// Start a bus (make run), then the server, then the client, each in a
// terminal of its own:
//
//	go run ./examples/streams -serve
//	go run ./examples/streams
//
// Conn.DialStream makes a socketpair and sends one end to a listener in a
// request; from then on the bytes go from process to process without the
// broker. Both ends learn who the other is from the broker, which takes it
// from the socket's credentials (StreamConn.Peer).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
)

func main() {
	serve := flag.Bool("serve", false, `serve the streams "squares" and "web" until interrupted`)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := clientlib.Connect(connectCtx, clientlib.WithName("streams-example"))
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if *serve {
		err = runServer(ctx, c)
	} else {
		err = runClient(ctx, c)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func runServer(ctx context.Context, c *clientlib.Conn) error {
	squares, err := c.Listen("squares")
	if err != nil {
		return err
	}
	defer squares.Close()
	web, err := c.Listen("web")
	if err != nil {
		return err
	}
	defer web.Close()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s over a busd stream", r.Method, r.URL.Path)
	})}
	go hs.Serve(web)
	defer hs.Close()
	go func() {
		for {
			sc, err := squares.AcceptStream(ctx)
			if err != nil {
				return // closed, or interrupted
			}
			go serveSquares(sc)
		}
	}()
	if err := c.Flush(ctx); err != nil { // both listeners are in place from here on
		return err
	}
	fmt.Fprintln(os.Stderr, `serving streams "squares" and "web"; ctrl-C to stop`)
	<-ctx.Done()
	return nil
}

// serveSquares answers each number read from a stream with its square,
// until the client ends the stream.
func serveSquares(sc *clientlib.StreamConn) {
	defer sc.Close()
	f := clientlib.MakeFile(sc, sc)
	for {
		var n int64
		if err := f.ReadValue(&n); err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("stream from pid %d: %v", sc.Peer().PID, err)
			}
			return
		}
		if err := f.WriteValue(n * n); err != nil {
			return
		}
		if err := f.Flush(); err != nil {
			return
		}
	}
}

func runClient(ctx context.Context, c *clientlib.Conn) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sc, err := c.DialStream(dctx, "squares")
	if err != nil {
		return err
	}
	defer sc.Close()
	f := clientlib.MakeFile(sc, sc)
	for _, n := range []int64{3, 12, 1 << 20} {
		if err := f.WriteValue(n); err != nil {
			return err
		}
		if err := f.Flush(); err != nil {
			return err
		}
		var sq int64
		if err := f.ReadValue(&sq); err != nil {
			return err
		}
		fmt.Printf("squares: %d -> %d\n", n, sq)
	}

	// Any protocol that runs over a net.Conn runs over a stream: here the
	// standard library's HTTP client, dialling through the bus.
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.DialStream(ctx, "web") },
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://web/hello")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Printf("web: %s: %s\n", resp.Status, body)

	if _, err := c.DialStream(dctx, "nobody"); errors.Is(err, clientlib.ErrNoListener) {
		fmt.Println("nobody: no listener")
	} else {
		return fmt.Errorf("dialling a stream nobody listens on: %v", err)
	}
	return nil
}
