package main

// End-to-end tests of -metrics and -log-format: busd built from this tree,
// scraped over a loopback port and a Unix socket, its log read line by
// line.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// metricsLine is the log line saying where metrics are served.
var metricsLine = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// metricsAddrOf waits for busd to log where it serves metrics and
// returns that address: the port it bound for 127.0.0.1:0.
func metricsAddrOf(t *testing.T, b *bustest.Busd) string {
	t.Helper()
	b.WaitLog(t, `msg="serving metrics"`, watchdog)
	m := metricsLine.FindStringSubmatch(b.Log())
	if m == nil {
		t.Fatalf("no address in busd's log:\n%s", b.Log())
	}
	return m[1]
}

// scrape GETs path from the endpoint through client and returns the
// status and body, checking the content type of a 200.
func scrape(t *testing.T, client *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://busd" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusOK && ct != openMetricsType {
		t.Errorf("Content-Type %q; want %q", ct, openMetricsType)
	}
	return resp.StatusCode, string(body)
}

// scrapeParsed scrapes /metrics and parses it as OpenMetrics.
func scrapeParsed(t *testing.T, client *http.Client) *exposition {
	t.Helper()
	code, body := scrape(t, client, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	e, err := parseOpenMetrics(body)
	if err != nil {
		t.Fatalf("not OpenMetrics: %v\n%s", err, body)
	}
	return e
}

// client returns an HTTP client that reaches network addr whatever the
// URL's host, with a watchdog on every request.
func client(network, addr string) *http.Client {
	return &http.Client{Timeout: watchdog, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// The endpoint on a free loopback port busd picked: OpenMetrics that
// parses, every Stats field present, the message counters rising by what
// was published, and nothing but GET /metrics served.
func TestMetricsLoopback(t *testing.T) {
	t.Parallel()
	b := bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-metrics", "127.0.0.1:0"}})
	addr := metricsAddrOf(t, b)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("busd logged it serves metrics on %s; want 127.0.0.1 and the port it bound", addr)
	}
	c := client("tcp", addr)
	before := scrapeParsed(t, c)
	for _, f := range statFamilies {
		if _, ok := before.types[f.name]; !ok {
			t.Errorf("no family %s", f.name)
		}
	}

	const n = 50
	sub := b.Subscribe(t, "metrics-sub", "metrics.test", "", 0)
	defer sub.Close()
	pub := b.Connect(t, "metrics-pub")
	defer pub.Close()
	for i := range n {
		pub.Pub("metrics.test", []byte(fmt.Sprint(i)))
	}
	pub.Sync() // the broker has routed every PUB once it answers the PING
	for range n {
		if f := sub.Next(); f.Op != wire.OpMsg {
			t.Fatalf("the subscriber got %v; want MSG", f.Op)
		}
	}
	after := scrapeParsed(t, c)
	for _, series := range []string{"busd_messages_published_total", "busd_messages_delivered_total"} {
		if got := after.samples[series] - before.samples[series]; got < n {
			t.Errorf("%s rose by %v after %d messages; want at least %d", series, got, n, n)
		}
	}
	if got := after.samples["busd_connections"]; got < 2 {
		t.Errorf("busd_connections = %v with two clients connected", got)
	}

	for path, want := range map[string]int{"/": 404, "/metrics/x": 404, "/debug/pprof/": 404} {
		if code, _ := scrape(t, c, path); code != want {
			t.Errorf("GET %s: %d; want %d", path, code, want)
		}
	}
	resp, err := c.Post("http://busd/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d; want 405", resp.StatusCode)
	}
}

// On a Unix socket the endpoint is as private as the bus: 0600, in a
// directory busd makes 0700, or 0660 and the group's with -group; the
// socket is gone once busd has stopped.
func TestMetricsUnixSocket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		mode  uint32
		dmode uint32
	}{
		{"private", nil, 0o600, 0o700},
		{"group", []string{"-mode", "0660", "-group", fmt.Sprint(os.Getegid())}, 0o660, 0o750},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp, err := os.MkdirTemp("", "met") // short: sun_path is 108 bytes
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(tmp) })
			path := filepath.Join(tmp, "m", "metrics.sock") // busd makes m
			b := bustest.StartWith(t, binDir, bustest.Options{Args: append(tc.args, "-metrics", path)})
			if got := metricsAddrOf(t, b); got != path {
				t.Errorf("busd logged metrics on %s; want %s", got, path)
			}
			for _, f := range []struct {
				path string
				mode uint32
			}{{path, unix.S_IFSOCK | tc.mode}, {filepath.Dir(path), unix.S_IFDIR | tc.dmode}} {
				var st unix.Stat_t
				if err := unix.Lstat(f.path, &st); err != nil {
					t.Fatal(err)
				}
				if st.Mode != f.mode || st.Gid != uint32(os.Getegid()) {
					t.Errorf("%s: mode %o group %d; want %o group %d", f.path, st.Mode, st.Gid, f.mode, os.Getegid())
				}
			}
			e := scrapeParsed(t, client("unix", path))
			if _, ok := e.samples["busd_messages_published_total"]; !ok {
				t.Errorf("no busd_messages_published_total over the Unix socket")
			}
			b.Stop(t)
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the metrics socket is still there after busd stopped: %v", err)
			}
		})
	}
}

// A metrics endpoint that cannot listen stops busd with status 1, and
// takes the bus's socket away with it: here a socket in a directory
// others may write to, which busd refuses as it refuses one for the bus.
func TestMetricsCannotListen(t *testing.T) {
	t.Parallel()
	open, err := os.MkdirTemp("", "open")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, out := runBusd(t, "-dir", dir, "-metrics", filepath.Join(open, "m.sock"))
	if code != 1 || !strings.Contains(out, "-metrics: ") || !strings.Contains(out, "msg=listening") {
		t.Errorf("busd with -metrics in a world-writable directory: exit %d, output:\n%s\nwant exit 1 after listening, naming -metrics", code, out)
	}
	if _, err := os.Lstat(filepath.Join(dir, "default.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bus's socket is left behind: %v", err)
	}
}

// runBusd runs busd with args until it exits (it must, within the
// watchdog) and returns its exit status and stderr.
func runBusd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "busd"), append([]string{"-dir", t.TempDir()}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// A command line busd cannot run as written exits 2 saying why, before it
// listens: a metrics address other machines could reach, an unknown log
// format.
func TestMetricsAndLogFormatUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-metrics", "0.0.0.0:9180"}, "0.0.0.0 is not a loopback address"},
		{[]string{"-metrics", "localhost:9180"}, "not a host name"},
		{[]string{"-log-format", "xml"}, `-log-format "xml": give text or json`},
		{[]string{"-socket", "/tmp/b/x.sock", "-metrics", "/tmp/b/m.sock"}, "would pass for a bus"},
	} {
		code, out := runBusd(t, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, "listening") {
			t.Errorf("busd %q: exit %d, output:\n%s\nwant exit 2, %q, and no listening", tc.args, code, out, tc.want)
		}
	}
}

// -log-format json: every line busd writes, from start to stop, is a JSON
// object with time, level and msg, including the metrics endpoint's.
func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "json")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command(filepath.Join(binDir, "busd"), "-dir", filepath.Join(dir, "bus"),
		"-log-format", "json", "-metrics", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watch := time.AfterFunc(watchdog, func() { cmd.Process.Kill() })
	defer watch.Stop()
	msgs := map[string]bool{}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line struct{ Time, Level, Msg string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Time == "" || line.Level == "" || line.Msg == "" {
			t.Errorf("a log line is not a JSON object with time, level and msg (%v): %s", err, sc.Text())
		}
		msgs[line.Msg] = true
		if line.Msg == "serving metrics" {
			cmd.Process.Signal(os.Interrupt) // busd is up: now its stopping lines
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("busd exited with %v", err)
	}
	for _, m := range []string{"listening", "serving metrics", "shutting down", "stopped"} {
		if !msgs[m] {
			t.Errorf("no %q line in the JSON log; got %v", m, msgs)
		}
	}
}
