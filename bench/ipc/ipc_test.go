package ipc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	RunRole()
	os.Exit(m.Run())
}

// child is one process of a benchmark.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startChild(tb testing.TB, s spec) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = s.env()
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	c.expect(tb, "ready")
	return c
}

func (c *child) expect(tb testing.TB, want string) {
	tb.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok || line != want {
			tb.Fatalf("child %s said %q (open %v); want %q", c.cmd.Env[0], line, ok, want)
		}
	case <-time.After(2 * time.Minute):
		tb.Fatalf("no %q from child within 2 minutes", want)
	}
}

// scenario is one benchmark: a publisher, subs subscribers, and for busd a
// broker between them.
type scenario struct {
	name string
	size int
	subs int
	fds  bool
}

var scenarios = []scenario{
	{"pubsub-16B", 16, 1, false},
	{"pubsub-1KiB", 1024, 1, false},
	{"fanout4-16B", 16, 4, false},
	{"fd-per-msg", 16, 1, true},
}

// run measures one scenario in one mode and reports msgs/s delivered (all
// subscribers together).
func run(b *testing.B, sc scenario, mode string) {
	b.SetBytes(int64(sc.size))
	rate := measure(b, sc, mode, b.N, b.ResetTimer)
	b.StopTimer()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(0, "ns/op") // per-op time mixes subscribers; msgs/s is the figure
}

// measure starts the processes, calls ready once they all are, has n
// messages sent, and returns the messages delivered per second.
func measure(tb testing.TB, sc scenario, mode string, n int, ready func()) float64 {

	dir, err := os.MkdirTemp("", "ipc")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s", "bus.sock")
	if mode == "busd" {
		startChild(tb, spec{role: "broker", path: path})
	}
	var subs []*child
	for i := range sc.subs {
		p := path
		if mode == "direct" {
			p = filepath.Join(dir, "s", fmt.Sprintf("direct%d.sock", i))
		}
		subs = append(subs, startChild(tb, spec{role: "sub", mode: mode, path: p, count: n, fds: sc.fds}))
	}
	pubPath := path
	if mode == "direct" {
		pubPath = filepath.Join(dir, "s", "direct0.sock")
	}
	pub := startChild(tb, spec{role: "pub", mode: mode, path: pubPath, count: n, size: sc.size, fds: sc.fds})
	ready()
	start := time.Now()
	io.WriteString(pub.stdin, "go\n")
	for _, s := range subs {
		s.expect(tb, "done")
	}
	return float64(n*sc.subs) / time.Since(start).Seconds()
}

// BenchmarkIPC runs every scenario through busd and over a direct socket,
// side by side. The direct fan-out has no broker to copy messages, so it is
// measured 1→1 and multiplied: the limit for four independent consumers.
func BenchmarkIPC(b *testing.B) {
	for _, sc := range scenarios {
		for _, mode := range []string{"busd", "direct"} {
			s := sc
			if mode == "direct" && sc.subs > 1 {
				continue // a direct socket has one reader; see pubsub-16B/direct
			}
			b.Run(sc.name+"/"+mode, func(b *testing.B) { run(b, s, mode) })
		}
	}
}

// TestRolesDeliver runs each scenario once with a few messages, so the
// harness itself is tested by make test.
func TestRolesDeliver(t *testing.T) {
	for _, sc := range scenarios {
		for _, mode := range []string{"busd", "direct"} {
			if mode == "direct" && sc.subs > 1 {
				continue
			}
			t.Run(sc.name+"/"+mode, func(t *testing.T) {
				if rate := measure(t, sc, mode, 200, func() {}); rate <= 0 {
					t.Fatalf("rate %v", rate)
				}
			})
		}
	}
}
