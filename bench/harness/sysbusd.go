package harness

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/clientlib"
)

// busdClient is a clientlib connection.
type busdClient struct {
	c *clientlib.Conn
	// payloadFiles subscribes with PayloadFiles: a payload that comes in
	// a memfd is handed to the subscriber's function as the first file,
	// not read into Data.
	payloadFiles bool
}

// busdOptions are the options a system's clients connect with: busd takes
// clientlib's defaults, as a program would; busd-inline and busd-fd set
// the large-payload threshold to never and to every payload.
func busdOptions(system string) []clientlib.Option {
	switch system {
	case "busd-inline":
		return []clientlib.Option{clientlib.WithLargePayloadThreshold(-1)}
	case "busd-fd":
		return []clientlib.Option{clientlib.WithLargePayloadThreshold(0)}
	}
	return nil
}

func dialBusd(path string, opts ...clientlib.Option) (*busdClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, append([]clientlib.Option{clientlib.WithSocket(path),
		clientlib.WithSubscriptionLimits(1<<24, 1<<31-1),
		clientlib.WithErrorHandler(func(_ *clientlib.Conn, _ *clientlib.Subscription, err error) {
			fmt.Fprintln(os.Stderr, "busd client:", err) // a broken run should say why
		})}, opts...)...)
	if err != nil {
		return nil, err
	}
	return &busdClient{c: c}, nil
}

func (b *busdClient) publish(topic string, data []byte, files []*os.File) error {
	return b.c.Publish(topic, data, files...)
}

func (b *busdClient) flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return b.c.Flush(ctx)
}

func (b *busdClient) subscribe(topic string, fn func([]byte, []*os.File)) error {
	// fn keeps neither the Msg nor its Data: they may be lent.
	opts := []clientlib.SubOption{clientlib.ReuseMessages()}
	if b.payloadFiles {
		opts = append(opts, clientlib.PayloadFiles())
	}
	var files []*os.File
	if _, err := b.c.Subscribe(topic, func(m *clientlib.Msg) {
		files = append(files[:0], m.Files...)
		if m.PayloadFile != nil {
			files = append([]*os.File{m.PayloadFile}, m.Files...)
		}
		fn(m.Data, files)
	}, opts...); err != nil {
		return err
	}
	return b.flush()
}

func (b *busdClient) request(topic string, data []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := b.c.Request(ctx, topic, data)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

func (b *busdClient) serve(topic string) error {
	_, err := b.c.Subscribe(topic, func(m *clientlib.Msg) { m.Respond(m.Data) }, clientlib.ReuseMessages())
	if err == nil {
		err = b.flush()
	}
	return err
}

func (b *busdClient) close() { b.c.Close() }

// stallBudgetEnv, when set to a duration, is the stall budget of the busd
// brokers the harness starts instead of the default: the harness's own
// test uses it, since it checks the harness, not how busd treats a
// subscriber starved of CPU for longer than the default 5 ms on a loaded
// machine (which the bus package's tests check, and which loses messages).
const stallBudgetEnv = "BUSBENCH_STALL_BUDGET"

// runBusdBroker serves a bus at path until the parent says stop.
func runBusdBroker(path string) error {
	cfg := bus.DefaultConfig()
	if d, err := time.ParseDuration(os.Getenv(stallBudgetEnv)); err == nil {
		cfg.StallBudget = d
	}
	srv, err := bus.NewServer(cfg)
	if err != nil {
		return err
	}
	l, err := bus.Listen(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { waitParent(); cancel() }()
	fmt.Println("ready " + path)
	srv.Serve(ctx, l)
	return nil
}
