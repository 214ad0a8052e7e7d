package harness

import (
	"fmt"
	"os"
)

// client is one connection of a system, as the roles use it.
type client interface {
	// publish sends data to topic, with files attached where the system
	// can carry them.
	publish(topic string, data []byte, files []*os.File) error
	// flush returns once everything published has left this process.
	flush() error
	// subscribe calls fn for every message on topic, from one goroutine.
	// fn owns files.
	subscribe(topic string, fn func(data []byte, files []*os.File)) error
	// request sends data to topic and returns the reply.
	request(topic string, data []byte) ([]byte, error)
	// serve answers every request on topic with its own payload.
	serve(topic string) error
	close()
}

// dial connects to a system's broker (or, for direct, a peer).
func dial(j *job) (client, error) {
	switch j.System {
	case "busd", "busd-memfd", "busd-inline", "busd-fd", "busd-payloadfile":
		b, err := dialBusd(j.Addr, busdOptions(j.System)...)
		if err == nil {
			b.payloadFiles = j.System == "busd-payloadfile"
		}
		return b, err
	case "nats":
		return dialNATS(j.Addr)
	case "relay", "direct":
		return dialRaw(j.Addr)
	case "dbus-daemon", "dbus-broker":
		return dialDBus(j.Addr)
	case "mosquitto":
		return dialMQTT(j.Addr)
	}
	return nil, fmt.Errorf("unknown system %q", j.System)
}

// Topics the roles use.
const (
	pubTopic = "bench.x"
	reqTopic = "bench.req"
)
