// Package ipc measures busd between separate processes: a publisher, a
// broker and subscribers, each its own process, against the same processes
// talking over a direct Unix socket. The test binary re-executes itself in
// the role named by $BUSBENCH_ROLE.
package ipc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock"
)

// RoleEnv names the environment variable that selects a child's role.
const RoleEnv = "BUSBENCH_ROLE"

// spec is what a child needs to know, passed in the environment.
type spec struct {
	role  string // broker, sub, pub
	mode  string // busd or direct
	path  string // socket
	count int    // messages to send or receive
	size  int    // payload bytes
	fds   bool   // one descriptor per message
}

func specFromEnv() spec {
	atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	return spec{
		role: os.Getenv(RoleEnv), mode: os.Getenv("BUSBENCH_MODE"), path: os.Getenv("BUSBENCH_PATH"),
		count: atoi("BUSBENCH_COUNT"), size: atoi("BUSBENCH_SIZE"), fds: os.Getenv("BUSBENCH_FDS") == "1",
	}
}

func (s spec) env() []string {
	fds := "0"
	if s.fds {
		fds = "1"
	}
	return append(os.Environ(), RoleEnv+"="+s.role, "BUSBENCH_MODE="+s.mode, "BUSBENCH_PATH="+s.path,
		"BUSBENCH_COUNT="+strconv.Itoa(s.count), "BUSBENCH_SIZE="+strconv.Itoa(s.size), "BUSBENCH_FDS="+fds)
}

// RunRole runs the child role named in the environment and exits; it
// returns only if there is none.
func RunRole() {
	s := specFromEnv()
	if s.role == "" {
		return
	}
	code := 0
	defer func() { os.Exit(code) }()
	if dir := os.Getenv("BUSBENCH_PROFILE"); dir != "" {
		stop := profile(dir, s.role)
		defer stop()
	}
	var err error
	switch s.role {
	case "broker":
		err = runBroker(s)
	case "sub":
		err = runSub(s)
	case "pub":
		err = runPub(s)
	default:
		err = fmt.Errorf("unknown role %q", s.role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.role, err)
		code = 1
	}
}

// profile writes a CPU profile of this child to dir/ROLE-PID.prof, for
// finding where a scenario's time goes (set $BUSBENCH_PROFILE).
func profile(dir, role string) (stop func()) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.prof", role, os.Getpid())))
	if err != nil {
		return func() {}
	}
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// runBroker serves a bus until stdin closes.
func runBroker(s spec) error {
	srv, err := bus.NewServer(bus.DefaultConfig())
	if err != nil {
		return err
	}
	l, err := bus.Listen(s.path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n') // EOF when the parent is done
		cancel()
	}()
	fmt.Println("ready")
	srv.Serve(ctx, l)
	return nil
}

// runSub receives s.count messages, then says done.
func runSub(s spec) error {
	recv, err := subscriber(s)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for range s.count {
		if err := recv(); err != nil {
			return err
		}
	}
	fmt.Println("done")
	return nil
}

func subscriber(s spec) (func() error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.mode == "direct" {
		return directSubscriber(s)
	}
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(s.path), clientlib.WithSubscriptionLimits(1<<24, 1<<30))
	if err != nil {
		return nil, err
	}
	sub, err := c.SubscribeSync("bench.>")
	if err != nil {
		return nil, err
	}
	if err := c.Flush(ctx); err != nil {
		return nil, err
	}
	return func() error {
		m, err := sub.Next(context.Background())
		if err != nil {
			return err
		}
		return m.CloseFiles()
	}, nil
}

// directSubscriber listens itself and reads the same frames straight from
// the publisher: the limit a broker hop is measured against.
func directSubscriber(s spec) (func() error, error) {
	l, err := unixsock.Listen(s.path, unixsock.WithConnOptions(unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage)))
	if err != nil {
		return nil, err
	}
	var r *wire.Reader
	var conn *unixsock.Conn
	lim := wire.DefaultLimits
	lim.MaxFDs = wire.MaxFDsPerFrame
	return func() error {
		if r == nil {
			if conn, err = l.Accept(); err != nil {
				return err
			}
			r = wire.NewReader(conn, &lim)
		}
		f, err := r.Next(nil)
		if err != nil {
			return err
		}
		_ = append([]byte(nil), f.Payload...) // a copy, as a client hands out
		if f.NFDs > 0 {
			fds, err := conn.TakeFDs(int(f.NFDs))
			if err != nil {
				return err
			}
			for _, fd := range fds {
				os.NewFile(uintptr(fd), "").Close()
			}
		}
		return nil
	}, nil
}
