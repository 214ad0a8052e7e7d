// Command clock is the service of docs/ACTIVATION.md's example: busd
// starts it when a request comes for the name org.example.Clock and nobody
// owns it (busd -services DIR, with examples/activation's service file in
// DIR). It takes the name and answers each request on
// _NAME.org.example.Clock with the time in the zone -zone names.
//
// It finds the bus the way every client does; when busd starts it, busd
// sets $BUSD_SOCKET to the bus it serves. What it writes to stderr goes to
// busd's log.
//
//	clock [-name NAME] [-zone ZONE] [-idle DURATION]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
)

func main() {
	name := flag.String("name", "org.example.Clock", "the well-known `name` to serve")
	zone := flag.String("zone", "UTC", "the time `zone` to answer in (an IANA name such as Europe/Paris)")
	idle := flag.Duration("idle", 0, "exit after this long without a request, to be started again by the next (0: never)")
	flag.Parse()
	if err := run(*name, *zone, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "clock:", err)
		os.Exit(1)
	}
}

func run(name, zone string, idle time.Duration) error {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A service the bus started lives as long as that bus: when the bus
	// goes away the clock exits rather than wait for another (the next
	// bus starts it again when someone asks), so that stopping busd leaves
	// no service of its behind.
	ctx, busGone := context.WithCancel(ctx)
	defer busGone()
	conn, err := clientlib.Connect(ctx, clientlib.WithName("clock"), clientlib.WithNoReconnect(),
		clientlib.WithClosedHandler(func(*clientlib.Conn) { busGone() }))
	if err != nil {
		return err
	}
	defer conn.Close()

	asked := make(chan struct{}, 1)
	// Subscribed before the name is asked for: the requests busd held
	// while it started this process are delivered the moment it owns the
	// name, and this subscription takes them.
	_, err = conn.Subscribe(clientlib.NamePrefix+name, func(m *clientlib.Msg) {
		m.Respond([]byte(time.Now().In(loc).Format(time.RFC3339)))
		select {
		case asked <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	res, err := conn.RequestName(ctx, name, clientlib.DoNotQueue)
	if err != nil {
		return err
	}
	if res != clientlib.PrimaryOwner {
		return fmt.Errorf("%s: another process serves it (%s)", name, res)
	}
	fmt.Fprintf(os.Stderr, "clock: serving %s in %s\n", name, loc)

	var timeout <-chan time.Time
	for {
		if idle > 0 {
			timeout = time.After(idle)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-asked:
		case <-timeout:
			fmt.Fprintf(os.Stderr, "clock: idle for %v, exiting\n", idle)
			return nil
		}
	}
}
