// Command plugins-policy is a plugin host whose plugins may only answer on
// their own topics: it embeds a broker with a policy saying so, runs itself
// again as the plugin, as uid 65534, and shows what the plugin may do.
//
//	sudo go run ./examples/plugins-policy
//
// Run by another user than root, the plugin runs as that user, the broker's
// own, whom the policy's default rule lets do everything: it says so.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock"
)

const (
	// policyText is the broker's policy, PLUGIN being the plugin's uid.
	// The default rules follow: the broker's uid (the host's) may do
	// everything but read other connections' inboxes, others nothing.
	policyText = `# plugins may take requests on their own topics and answer them; nothing else
allow uid PLUGIN subscribe,reply plugin.%uid.>
`
	nobody       = 65534                       // the plugin's uid and gid when the host is root
	envSocket    = "PLUGINS_POLICY_SOCKET"     // set: this process is the plugin
	envHostInbox = "PLUGINS_POLICY_HOST_INBOX" // which the plugin tries to read
	readyLine    = "plugin: ready"             // the plugin's report ends here
)

func main() {
	if socket := os.Getenv(envSocket); socket != "" {
		if err := runPlugin(socket, os.Getenv(envHostInbox)); err != nil {
			log.Fatal("plugin: ", err)
		}
		return
	}
	// A watchdog: a plugin or request that hangs is killed or abandoned.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := runHost(ctx); err != nil {
		log.Fatal("host: ", err)
	}
}

// runHost is the host: it runs the broker while it demonstrates.
func runHost(ctx context.Context) error {
	plugin := nobody
	if uid := os.Geteuid(); uid != 0 {
		plugin = uid
		fmt.Printf("note: not running as root, so the plugin runs as uid %d like the broker, and the policy's default rule lets the broker's uid do everything but read other connections' inboxes; run this as root (sudo) to see the plugin confined to its own topics\n", uid)
	}
	// Mode 0755: the plugin's uid must reach the socket, and only the host
	// may put a socket there (clientlib checks that before connecting).
	dir, err := os.MkdirTemp("", "plugins-policy")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	text := strings.ReplaceAll(policyText, "PLUGIN", strconv.Itoa(plugin))
	cfg := bus.DefaultConfig()
	if cfg.Policy, err = policy.Parse("plugins.policy", strings.NewReader(text)); err != nil {
		return err
	}
	srv, err := bus.NewServer(cfg)
	if err != nil {
		return err
	}
	socket := filepath.Join(dir, "bus.sock")
	l, err := bus.Listen(socket, unixsock.WithMode(0o666)) // any uid may connect; the policy decides the rest
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	fmt.Printf("host: broker on %s with policy %s:\n", socket, cfg.Policy.Source)
	for line := range strings.Lines(text) {
		fmt.Print("    ", line)
	}
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(socket), clientlib.WithName("host"))
	if err == nil {
		err = demonstrate(ctx, c, dir, socket, plugin)
		c.Close()
	}
	// However that went, the broker stops, cleanly: every connection
	// flushed and closed, and Serve ended.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(sctx))
	if serr := <-served; !errors.Is(serr, bus.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err == nil {
		fmt.Println("host: plugin stopped, broker shut down")
	}
	return err
}

// demonstrate starts the plugin, relays its report, questions it, stops it.
func demonstrate(ctx context.Context, c *clientlib.Conn, dir, socket string, plugin int) error {
	cmd, err := pluginCommand(ctx, dir, plugin)
	if err != nil {
		return err
	}
	// The broker names each connection's inbox after the connection's id.
	cmd.Env = []string{envSocket + "=" + socket, envHostInbox + "=" + c.Inbox()}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closing it stops the plugin
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	fmt.Printf("host: starting the plugin as uid %d\n", plugin)
	if err := cmd.Start(); err != nil {
		return err
	}
	// The plugin's report goes to stdout up to readyLine, its last.
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && lines.Text() != readyLine {
		fmt.Println(lines.Text())
	}
	if lines.Text() != readyLine {
		return fmt.Errorf("the plugin ended before it was ready: %v", cmd.Wait())
	}
	err = askPlugin(ctx, c, fmt.Sprintf("plugin.%d.", plugin))
	stdin.Close()
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("the plugin: %w", werr)
	}
	return err
}

// pluginCommand runs this program as the plugin, as uid plugin; another uid
// runs a copy in dir, as go run builds in a directory only its owner enters.
func pluginCommand(ctx context.Context, dir string, plugin int) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil || plugin == os.Geteuid() {
		return exec.CommandContext(ctx, self), err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "plugin")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = "/" // the host's working directory may be closed to the plugin's uid
	// No supplementary groups: root's would lend the plugin their rights.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(plugin), Gid: uint32(plugin), Groups: []uint32{}}}
	return cmd, nil
}

// askPlugin asks the plugin, on its topics (prefix), for an echo, then
// publishes host.secrets and asks what the plugin's ">" subscription got.
func askPlugin(ctx context.Context, c *clientlib.Conn, prefix string) error {
	reply, err := c.Request(ctx, prefix+"echo", []byte("hello"))
	if err != nil {
		return err
	}
	// The broker stamps the origin from the replier's socket credentials:
	// the plugin cannot pass for someone else.
	fmt.Printf("host: %secho \"hello\" -> %q from uid %d\n", prefix, reply.Data, reply.Origin.UID)
	if err := c.Publish("host.secrets", []byte("the host's secret")); err != nil {
		return err
	}
	// Sent after host.secrets on the same connection, this request reaches
	// the plugin after host.secrets would have.
	if reply, err = c.Request(ctx, prefix+"seen", nil); err != nil {
		return err
	}
	fmt.Printf("host: published host.secrets; the plugin's \">\" subscription got: %s\n", reply.Data)
	if !slices.Contains(strings.Split(string(reply.Data), ", "), "host.secrets") {
		fmt.Println("host: host.secrets never reached the plugin")
	}
	return nil
}
