package harness

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The MQTT peer: mosquitto 2 on a Unix socket, paho clients, QoS 0. paho
// dials "unix://" broker URLs itself (since v1.4), so no custom dialer is
// needed except for the laggard subscribers.

// mqttClient is one paho connection.
type mqttClient struct {
	c    mqtt.Client
	last mqtt.Token // of the last publish: flush waits for it

	replies chan []byte // request: the replies on the reply topic
}

var mqttIDs atomic.Int64

func mqttOptions(path string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker("unix://" + path).
		SetClientID(fmt.Sprintf("busbench-%d-%d", os.Getpid(), mqttIDs.Add(1))).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(2 * time.Minute) // a publisher blocked that long has failed
}

func dialMQTT(path string) (*mqttClient, error) {
	c := mqtt.NewClient(mqttOptions(path))
	if err := wait(c.Connect()); err != nil {
		return nil, err
	}
	return &mqttClient{c: c}, nil
}

// wait waits, boundedly, for a paho operation.
func wait(t mqtt.Token) error {
	if !t.WaitTimeout(2 * time.Minute) {
		return fmt.Errorf("mqtt: no answer within 2 minutes")
	}
	return t.Error()
}

func (m *mqttClient) publish(topic string, data []byte, files []*os.File) error {
	if len(files) > 0 {
		return fmt.Errorf("mqtt cannot carry file descriptors")
	}
	m.last = m.c.Publish(topic, 0, false, data)
	return nil
}

// flush waits for the last publish: paho writes packets in order, so once
// that one is on the socket so are all before it.
func (m *mqttClient) flush() error {
	if m.last == nil {
		return nil
	}
	return wait(m.last)
}

// subscribe calls fn on paho's router goroutine, in order (paho's
// OrderMatters default), one message at a time.
func (m *mqttClient) subscribe(topic string, fn func([]byte, []*os.File)) error {
	return wait(m.c.Subscribe(topic, 0, func(_ mqtt.Client, msg mqtt.Message) { fn(msg.Payload(), nil) }))
}

// MQTT 3.1.1 has no request/reply; the idiom is a reply topic agreed on by
// both sides. One requester at a time uses it here, as in the scenarios.
func replyTopic(topic string) string { return topic + "/reply" }

func (m *mqttClient) request(topic string, data []byte) ([]byte, error) {
	if m.replies == nil {
		m.replies = make(chan []byte, 1)
		if err := wait(m.c.Subscribe(replyTopic(topic), 0, func(_ mqtt.Client, msg mqtt.Message) {
			m.replies <- msg.Payload()
		})); err != nil {
			return nil, err
		}
	}
	if err := wait(m.c.Publish(topic, 0, false, data)); err != nil {
		return nil, err
	}
	select {
	case r := <-m.replies:
		return r, nil
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("no reply within 10s")
	}
}

// serve echoes each request on the reply topic. paho's handlers must not
// publish (they run on the goroutine that routes acknowledgements), so a
// goroutine of ours does.
func (m *mqttClient) serve(topic string) error {
	reqs := make(chan []byte, 64)
	go func() {
		for p := range reqs {
			m.c.Publish(replyTopic(topic), 0, false, p)
		}
	}()
	return wait(m.c.Subscribe(topic, 0, func(_ mqtt.Client, msg mqtt.Message) { reqs <- msg.Payload() }))
}

func (m *mqttClient) close() { m.c.Disconnect(100) }

// dialGatedMQTT connects a paho subscriber over a gatedConn, for a
// laggard: without keepalive pings, which would need answers.
func dialGatedMQTT(path string) (*gatedConn, error) {
	var g *gatedConn
	o := mqttOptions(path).SetKeepAlive(0).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			var err error
			g, err = dialGated(path)
			return g, err
		})
	c := mqtt.NewClient(o)
	if err := wait(c.Connect()); err != nil {
		return nil, err
	}
	if err := wait(c.Subscribe(pubTopic, 0, func(mqtt.Client, mqtt.Message) {})); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// mosquittoConfig listens on a Unix socket only. max_queued_messages 0
// lifts mosquitto's per-client queue limit, which for QoS 0 it enforces by
// silently dropping messages (ANCHORS.md: 0.4–38% under a flood), so that
// it is measured delivering everything, as the other systems are; user
// keeps it from dropping root privileges to a "mosquitto" user that could
// not reach the temporary directory.
const mosquittoConfig = `listener 0 %s
allow_anonymous true
max_queued_messages 0
persistence false
log_dest stderr
log_type error
log_type warning
user %s
`

// runMosquittoBroker runs mosquitto listening at path.
func runMosquittoBroker(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, mosquittoConfig, path, u.Username), 0o600); err != nil {
		return err
	}
	bin, err := lookBin("mosquitto")
	if err != nil {
		return err
	}
	return runDaemon(exec.Command(bin, "-c", conf), filepath.Join(dir, "mosquitto.log"), path, dialProbe(path))
}
