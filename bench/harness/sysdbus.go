package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// The D-Bus peers, dbus-daemon and dbus-broker, on a private bus, with
// godbus clients. A bus topic is a signal member (and a subscription a
// match rule on it); a request is a method call to a name the responder
// owns. Payloads travel as strings: godbus decodes an `ay` byte by byte,
// which would measure the client rather than the bus.

const (
	dbusPath  = dbus.ObjectPath("/org/busd/Bench")
	dbusIface = "org.busd.Bench"
)

// dbusClient is one godbus connection.
type dbusClient struct {
	conn *dbus.Conn

	mu   sync.Mutex
	subs map[string]func([]byte, []*os.File) // by signal member

	textMu  sync.Mutex // requests may be made from several goroutines
	lastIn  []byte     // the last payload published, and its text, kept so a
	lastOut string     // publish loop converts its payload once
}

func dialDBus(addr string) (*dbusClient, error) {
	d := &dbusClient{subs: map[string]func([]byte, []*os.File){}}
	conn, err := dbus.Connect(addr, dbus.WithSignalHandler(d))
	if err != nil {
		return nil, err
	}
	d.conn = conn
	return d, nil
}

// member turns a topic into a signal member or name element: letters,
// digits and '_', not starting with a digit.
func member(topic string) string {
	b := []byte(topic)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return "T" + string(b)
}

// text maps a payload to printable ASCII of the same length: a D-Bus string
// must be UTF-8 without NULs.
func (d *dbusClient) text(data []byte) string {
	d.textMu.Lock()
	defer d.textMu.Unlock()
	if len(data) > 0 && len(data) == len(d.lastIn) && &data[0] == &d.lastIn[0] {
		return d.lastOut
	}
	b := make([]byte, len(data))
	for i, c := range data {
		b[i] = 'a' + c%26
	}
	d.lastIn, d.lastOut = data, string(b)
	return d.lastOut
}

// publish emits one signal; godbus writes it to the socket before returning.
func (d *dbusClient) publish(topic string, data []byte, files []*os.File) error {
	args := []any{d.text(data)}
	for _, f := range files {
		args = append(args, dbus.UnixFD(f.Fd()))
	}
	return d.conn.Emit(dbusPath, dbusIface+"."+member(topic), args...)
}

// flush makes a round trip to the bus: it handles a connection's messages
// in order, so once it answers it has routed every signal sent before.
func (d *dbusClient) flush() error {
	return d.conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err
}

func (d *dbusClient) subscribe(topic string, fn func([]byte, []*os.File)) error {
	d.mu.Lock()
	d.subs[member(topic)] = fn
	d.mu.Unlock()
	return d.conn.AddMatchSignal(dbus.WithMatchInterface(dbusIface), dbus.WithMatchMember(member(topic)))
}

// DeliverSignal is godbus's hook for incoming signals. It runs on godbus's
// reading goroutine, so the subscriber reads no faster than it handles, as
// with the other systems, and nothing queues unboundedly in the client.
func (d *dbusClient) DeliverSignal(iface, name string, sig *dbus.Signal) {
	d.mu.Lock()
	fn := d.subs[name]
	d.mu.Unlock()
	if fn == nil || iface != dbusIface || len(sig.Body) == 0 {
		return
	}
	s, _ := sig.Body[0].(string)
	var files []*os.File
	for _, v := range sig.Body[1:] {
		if fd, ok := v.(dbus.UnixFD); ok {
			files = append(files, os.NewFile(uintptr(fd), "fd"))
		}
	}
	fn([]byte(s), files)
}

// request calls Echo on the responder's name. The responder may still be
// claiming the name when the first call goes out (it says ready on
// connecting), so an unknown name is retried for a while.
func (d *dbusClient) request(topic string, data []byte) ([]byte, error) {
	obj := d.conn.Object(dbusIface+"."+member(topic), dbusPath)
	var reply string
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := obj.Call(dbusIface+".Echo", 0, d.text(data)).Store(&reply)
		if e, ok := err.(dbus.Error); ok && nameUnknown[e.Name] && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return []byte(reply), err
	}
}

// nameUnknown holds the errors for a call to a name nobody owns (yet).
var nameUnknown = map[string]bool{
	"org.freedesktop.DBus.Error.ServiceUnknown": true,
	"org.freedesktop.DBus.Error.NameHasNoOwner": true,
}

// dbusEcho is the object a responder exports.
type dbusEcho struct{}

// Echo answers a request with its own payload.
func (dbusEcho) Echo(s string) (string, *dbus.Error) { return s, nil }

func (d *dbusClient) serve(topic string) error {
	if err := d.conn.Export(dbusEcho{}, dbusPath, dbusIface); err != nil {
		return err
	}
	r, err := d.conn.RequestName(dbusIface+"."+member(topic), dbus.NameFlagDoNotQueue)
	if err == nil && r != dbus.RequestNameReplyPrimaryOwner {
		err = fmt.Errorf("name %s not granted (%v)", member(topic), r)
	}
	return err
}

func (d *dbusClient) close() { d.conn.Close() }

// dialGatedDBus connects a godbus connection over a gatedConn and
// subscribes it, for a laggard: once the gate closes or narrows, the bus
// has to queue (or drop) what it sends.
func dialGatedDBus(addr string) (*gatedConn, error) {
	path, ok := strings.CutPrefix(addr, "unix:path=")
	if !ok {
		return nil, fmt.Errorf("address %q", addr)
	}
	g, err := dialGated(path)
	if err != nil {
		return nil, err
	}
	conn, err := dbus.NewConn(g)
	if err == nil {
		err = conn.Auth(nil)
	}
	if err == nil {
		err = conn.Hello()
	}
	if err == nil {
		err = conn.AddMatchSignal(dbus.WithMatchInterface(dbusIface), dbus.WithMatchMember(member(pubTopic)))
	}
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// The broker role of the D-Bus peers.

// dbusConfig is a private session-like bus: one Unix socket, anyone may
// own, send and receive anything, and the limits of Debian's session bus,
// which "should never be hit".
const dbusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow send_type="signal"/>
    <allow receive_sender="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_incoming_unix_fds">250000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_outgoing_unix_fds">250000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_completed_connections">100000</limit>
  <limit name="max_incomplete_connections">10000</limit>
  <limit name="max_connections_per_user">100000</limit>
  <limit name="max_names_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
`

// runDBusBroker runs dbus-daemon or dbus-broker on a private bus at path.
func runDBusBroker(system, path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, dbusConfig, path), 0o600); err != nil {
		return err
	}
	addr := "unix:path=" + path
	// Connecting is the probe: it is also what makes systemd-socket-activate
	// start dbus-broker-launch.
	probe := func() error {
		c, err := dbus.Connect(addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	var cmd, err = dbusDaemonCmd(conf)
	if system == "dbus-broker" {
		cmd, err = dbusBrokerCmd(dir, conf, path, addr)
	}
	if err != nil {
		return err
	}
	return runDaemon(cmd, filepath.Join(dir, system+".log"), addr, probe)
}
