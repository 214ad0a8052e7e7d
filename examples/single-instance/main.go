// Command single-instance shows clientlib.SingleInstance: the first launch
// owns the well-known name "org.busd.example.SingleInstance" and prints
// the arguments (and files) of every later launch; a later launch hands
// its arguments to the first, waits for it to take them, and exits 0.
//
// Start a bus first (make run), then, in two terminals:
//
//	go run ./examples/single-instance first
//	go run ./examples/single-instance -open /etc/hostname second launch
//
// The first prints `later launch (pid N): ["second" "launch"]` and the
// file it was handed; the second exits. Stop the first with Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/busd/busd/clientlib"
)

const name = "org.busd.example.SingleInstance"

func main() {
	open := flag.String("open", "", "a file to hand to the first instance")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := clientlib.Connect(ctx, clientlib.WithName("single-instance-example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var files []*os.File
	if *open != "" {
		f, err := os.Open(*open)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	inst, err := clientlib.SingleInstance(ctx, c, name, flag.Args(), files...)
	if errors.Is(err, clientlib.ErrHandedOver) {
		fmt.Println("handed the arguments to the running instance")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("first instance: %q\n", flag.Args())
	fmt.Fprintln(os.Stderr, "first instance: waiting for later launches")
	for {
		l, err := inst.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				inst.Close(context.Background())
				return // interrupted: a clean exit
			}
			log.Fatal(err)
		}
		fmt.Printf("later launch (pid %d): %q\n", l.PID, l.Args)
		for _, f := range l.Files {
			path, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
			fmt.Printf("  with file %s\n", path)
			f.Close()
		}
		// Printed first: the later launch exits once it is acknowledged.
		if err := l.Ack(); err != nil {
			log.Print(err)
		}
	}
}
