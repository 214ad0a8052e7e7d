package harness

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsClient is a nats.go connection.
type natsClient struct{ nc *nats.Conn }

func dialNATS(url string) (*natsClient, error) {
	nc, err := nats.Connect(url, nats.Timeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	return &natsClient{nc}, nil
}

func (n *natsClient) publish(topic string, data []byte, files []*os.File) error {
	if len(files) > 0 {
		return fmt.Errorf("nats cannot carry file descriptors")
	}
	return n.nc.Publish(topic, data)
}

func (n *natsClient) flush() error { return n.nc.FlushTimeout(2 * time.Minute) }

func (n *natsClient) subscribe(topic string, fn func([]byte, []*os.File)) error {
	sub, err := n.nc.Subscribe(topic, func(m *nats.Msg) { fn(m.Data, nil) })
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, -1) // measure throughput, not the client's drop policy
	return n.flush()
}

func (n *natsClient) request(topic string, data []byte) ([]byte, error) {
	m, err := n.nc.Request(topic, data, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

func (n *natsClient) serve(topic string) error {
	if _, err := n.nc.Subscribe(topic, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		return err
	}
	return n.flush()
}

func (n *natsClient) close() { n.nc.Close() }

// runNATSBroker runs nats-server on 127.0.0.1 at a free port until the
// parent says stop. It allows 64 MiB payloads, its maximum, so that large
// messages can be compared where NATS can carry them.
func runNATSBroker() error {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		MaxPayload: 64 << 20, MaxPending: 256 << 20,
	})
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats-server not ready")
	}
	fmt.Println("ready " + s.ClientURL())
	waitParent()
	s.Shutdown()
	return nil
}
