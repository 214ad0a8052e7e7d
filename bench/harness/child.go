package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// RoleEnv names the environment variable that makes a process a child.
const RoleEnv = "BUSBENCH_ROLE"

// job is what a child is told to do, passed as JSON in the environment.
type job struct {
	Role     string `json:"role"`   // broker, sub, pub, rep, req, idle, listen, dial
	System   string `json:"system"` // one of Systems
	Addr     string `json:"addr"`   // where to connect or listen
	Addrs    []string
	Count    int    `json:"count"`    // messages, round trips or connections
	Size     int    `json:"size"`     // payload bytes
	FDs      bool   `json:"fds"`      // one descriptor per message
	Lag      string `json:"lag"`      // a subscriber that is not counted: lagStalled or lagSlow
	Inflight int    `json:"inflight"` // requests outstanding at once; 0 means 1
	// Touch has a subscriber read every cache line of each payload, as a
	// receiver that uses its data would: large messages, and every size
	// of the sweep, so that its rows differ only in size.
	Touch bool `json:"touch"`
}

// The laggards, subscribers that are connected but not counted, by how they
// read.
const (
	lagStalled = "stalled" // never
	lagSlow    = "slow"    // slowChunk every slowEvery
)

// report is what a measuring child prints after "done ".
type report struct {
	Latencies []float64 `json:"lat_us,omitempty"`   // requester: each round trip, µs
	Seconds   float64   `json:"s,omitempty"`        // requester: all of them
	Received  int       `json:"received,omitempty"` // subscriber: messages before the end marker
	Err       string    `json:"err,omitempty"`
}

// RunChild runs the role named in the environment and exits; it returns at
// once in a process that is not a child.
func RunChild() {
	spec := os.Getenv(RoleEnv)
	if spec == "" {
		return
	}
	var j job
	err := json.Unmarshal([]byte(spec), &j)
	if err == nil {
		stop := profile(j.Role + "-" + j.System)
		err = runRole(&j)
		stop()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "busbench %s/%s: %v\n", j.Role, j.System, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// profile writes a CPU profile of this child to $BUSBENCH_PROFILE/NAME-PID.prof
// when that variable names a directory: how to find where a scenario's time
// goes, process by process.
func profile(name string) (stop func()) {
	dir := os.Getenv("BUSBENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.prof", name, os.Getpid())))
	if err != nil {
		return func() {}
	}
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// ready tells the parent the child is set up, then waits for "go" (or, with
// wait false, returns at once).
func ready(wait bool) error {
	fmt.Println("ready")
	if !wait {
		return nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || line != "go\n" {
		return fmt.Errorf("waiting for go: %q, %v", line, err)
	}
	return nil
}

// waitParent blocks until the parent closes our stdin: how long-lived
// children (brokers, idle clients) learn to stop.
func waitParent() { io.Copy(io.Discard, os.Stdin) }

func done(r report) {
	b, _ := json.Marshal(r)
	fmt.Printf("done %s\n", b)
}

// proc is a child process as the parent sees it.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	name  string
}

func start(j job) (*proc, error) {
	spec, _ := json.Marshal(j)
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), RoleEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: stdin, lines: make(chan string, 4), name: j.Role + "/" + j.System}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<26)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p, nil
}

// expect waits for a line starting with prefix and returns the rest.
func (p *proc) expect(prefix string, timeout time.Duration) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("%s exited before saying %q", p.name, prefix)
		}
		if !strings.HasPrefix(line, prefix) {
			return "", fmt.Errorf("%s said %q; want %q", p.name, line, prefix)
		}
		return strings.TrimSpace(strings.TrimPrefix(line, prefix)), nil
	case <-time.After(timeout):
		return "", fmt.Errorf("%s: no %q within %v", p.name, prefix, timeout)
	}
}

func (p *proc) send(line string) { io.WriteString(p.stdin, line+"\n") }

// stop closes the child's stdin and waits for it, killing it after a while.
func (p *proc) stop() {
	p.stdin.Close()
	waited := make(chan struct{})
	go func() { p.cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-waited
	}
}

// rssKiB reads the resident set of the child and its descendants from
// /proc: the broker role of an outside peer (dbus-daemon, mosquitto) is a
// Go process supervising the daemon, whose memory is what counts.
func (p *proc) rssKiB() (int, error) { return treeRSSKiB(p.cmd.Process.Pid) }

func treeRSSKiB(pid int) (int, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return 0, err
	}
	total := -1
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			total, _ = strconv.Atoi(f[1])
		}
	}
	if total < 0 {
		return 0, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	// Each thread lists the children it forked.
	tasks, _ := filepath.Glob(dir + "/task/*/children")
	for _, t := range tasks {
		kids, _ := os.ReadFile(t)
		for _, k := range strings.Fields(string(kids)) {
			if kid, err := strconv.Atoi(k); err == nil {
				if n, err := treeRSSKiB(kid); err == nil {
					total += n
				}
			}
		}
	}
	return total, nil
}
