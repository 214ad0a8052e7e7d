package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The peers that are outside programs (D-Bus daemons and mosquitto) rather
// than Go code built into busbench: whether they are installed, how much work
// they are given, and how their broker role supervises them.

// binaries lists what each outside peer needs installed.
var binaries = map[string][]string{
	"dbus-daemon": {"dbus-daemon"},
	"dbus-broker": {"dbus-broker-launch", "dbus-broker", "systemd-socket-activate", "mount", "sh"},
	"mosquitto":   {"mosquitto"},
}

// available returns "" when system can run here, or why it cannot: a
// missing binary is the one reason a system is skipped rather than failed.
func available(system string) string {
	for _, b := range binaries[system] {
		if _, err := lookBin(b); err != nil {
			return b + " not installed (make bench-deps)"
		}
	}
	// dbus-broker-launch logs only to the journal; the stand-in journal is
	// mounted in a private mount namespace, which takes root.
	if system == "dbus-broker" && os.Geteuid() != 0 {
		return "dbus-broker needs root here (it runs in a private mount namespace)"
	}
	return ""
}

// lookBin finds a binary on $PATH or in the sbin directories, which are not
// on an ordinary user's $PATH on Debian but hold mosquitto.
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// slowPeer reports the systems that move tens of thousands of messages a
// second rather than millions (ANCHORS.md).
func slowPeer(system string) bool { return binaries[system] != nil }

// countFor scales a scenario's message count for system: the slow peers get
// a twentieth (at least 2000) so that a repetition takes about a second, not
// minutes. Rates are per second, so the figures still compare; round trips
// and connections are few enough to keep. Of a paired scenario, whose
// count is long enough for busd's one-off costs to fade (see Scenarios) and
// the same in a quick run, they get a fortieth, and a two-hundredth in a
// quick run: a laggard costs them throughput all along, not once, so a
// shorter run shows the same ratio, and at a twentieth their six halves per
// repetition took the quick run past its time budget.
//
// busd-fd sends every payload in a memfd of its own: a memfd_create, a
// write, four seals and a descriptor through the broker per message, tens
// of microseconds where a small inline message takes a fraction of one.
// It gets at most fdMsgs messages (fdQuickMsgs with -quick), about as long
// as busd's millions.
func countFor(system string, k kind, n int, quick bool) int {
	switch {
	case system == "busd-fd" && quick:
		return min(n, fdQuickMsgs)
	case system == "busd-fd":
		return min(n, fdMsgs)
	case !slowPeer(system) || (k != pubsub && !k.paired()):
		return n
	case k.paired() && quick:
		return min(n, max(n/200, 2000))
	case k.paired():
		return min(n, max(n/40, 2000))
	}
	return min(n, max(n/20, 2000))
}

// runDaemon is the broker role of an outside peer: it starts cmd in its own
// process group (killed with us if we die), waits until probe succeeds,
// tells the parent "ready addr", and stops the daemon when the parent closes
// our stdin. The daemon's output goes to logPath, shown only if it fails:
// the parent reads our stdout line by line, and a clean run stays quiet.
func runDaemon(cmd *exec.Cmd, logPath, addr string, probe func() error) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		syscall.Kill(-pid, syscall.SIGTERM) // the group: launchers have children
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
		}
	}
	failed := func(err error) error {
		stop()
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s: %w; its output:\n%s", filepath.Base(cmd.Path), err, tail(b, 2000))
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		perr := probe()
		if perr == nil {
			break
		}
		select {
		case <-exited:
			return failed(errors.New("exited before accepting connections"))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return failed(fmt.Errorf("not ready within 15s: %v", perr))
		}
	}
	fmt.Println("ready " + addr)
	waitParent()
	select {
	case <-exited:
		return failed(errors.New("exited during the run"))
	default:
	}
	stop()
	return nil
}

// dialProbe succeeds once something accepts connections at path.
func dialProbe(path string) func() error {
	return func() error {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// gatedConn is a connection whose reads a laggard holds back once it has
// subscribed: after stall they block until Close, after slow they take at
// most slowChunk bytes per slowEvery. It is how a client library's
// connection, or a raw socket, becomes a subscriber that stopped reading or
// reads slowly. One goroutine reads it.
type gatedConn struct {
	net.Conn
	gate   atomic.Int32 // gateOpen, gateStalled or gateSlow
	once   sync.Once
	closed chan struct{}

	windowEnd time.Time // of the slow reader's current window
	left      int       // bytes it may still read in it
}

const (
	gateOpen = iota
	gateStalled
	gateSlow
)

// The slow laggard's pace: a subscriber that once (before busd paced publishers) read
// 64 KiB every 90 ms (about 0.7 MB/s) and held up an unrelated publisher
// for seconds. Steady progress, so that a broker cannot take it for a
// stalled one; 64 KiB is also what the raw laggard reads at once. (With 10
// ms, busd's ratio measured 0.88-0.92 instead of 0.92-0.96 on the test
// machine: a reader that wakes a hundred times a second takes its share of
// two busy vCPUs, and one that reads faster catches up, and is given
// messages again, more often.)
const (
	slowChunk = 64 << 10
	slowEvery = 90 * time.Millisecond
)

func newGatedConn(c net.Conn) *gatedConn {
	return &gatedConn{Conn: c, closed: make(chan struct{})}
}

func dialGated(path string) (*gatedConn, error) {
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return newGatedConn(c), nil
}

func (g *gatedConn) Read(b []byte) (int, error) {
	switch g.gate.Load() {
	case gateStalled:
		<-g.closed
		return 0, net.ErrClosed
	case gateSlow:
		return g.readSlowly(b)
	}
	return g.Conn.Read(b)
}

// readSlowly reads what is left of the window's slowChunk, waiting for the
// next window when nothing is: windows, not a rate per read, because a
// client library reads in pieces of its own size.
func (g *gatedConn) readSlowly(b []byte) (int, error) {
	if now := time.Now(); now.After(g.windowEnd) {
		g.windowEnd, g.left = now.Add(slowEvery), slowChunk
	}
	if g.left == 0 {
		t := time.NewTimer(time.Until(g.windowEnd))
		select {
		case <-t.C:
		case <-g.closed:
			t.Stop()
			return 0, net.ErrClosed
		}
		g.windowEnd, g.left = g.windowEnd.Add(slowEvery), slowChunk
	}
	n, err := g.Conn.Read(b[:min(len(b), g.left)])
	g.left -= n
	return n, err
}

func (g *gatedConn) stall() { g.gate.Store(gateStalled) }

func (g *gatedConn) slow() { g.gate.Store(gateSlow) }

func (g *gatedConn) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Conn.Close()
}
