// Package harness measures busd side by side with the physical limit and
// the buses people use today, each role in its own process.
//
// The busbench command drives it. For every scenario and repetition it
// starts, for each system in turn (so systems are interleaved repetition by
// repetition), a broker process if the system has one, the subscriber or
// responder processes, and the publisher or requester process. They are all
// the busbench binary itself, re-executed with $BUSBENCH_ROLE naming the
// role; they talk to the parent with lines on stdin and stdout: a child
// prints "ready" when set up, the parent answers "go", and a measuring child
// ends with "done" and its figures as JSON.
//
// Systems:
//   - busd: bus.Server from this repository, clients through clientlib
//     with its defaults (payloads over DefaultLargePayloadThreshold go in a
//     sealed memfd); busd-inline and busd-fd are the same with every
//     payload inline and every payload in a memfd; busd-payloadfile
//     publishes each payload as a sealed memfd of its own
//     (Msg.PayloadFile) that its subscribers take as a file
//     (PayloadFiles) and map; busd-memfd attaches one memfd, rewritten in
//     place, to each message as an ordinary descriptor;
//   - direct: the same frames over one Unix socket per subscriber, no broker;
//   - relay: a minimal broker that forwards every frame to every other
//     connection with batched writes: the cheapest possible broker hop;
//   - nats: nats-server from its Go module on 127.0.0.1, clients with nats.go;
//   - dbus-daemon, dbus-broker: the two D-Bus daemons on a private bus with a
//     config the broker role writes, clients with godbus; a topic is a
//     signal, a request a method call (sysdbus.go, dbuslaunch.go);
//   - mosquitto: MQTT 2.x on a Unix socket, paho clients, QoS 0 (sysmqtt.go).
//
// The outside programs are skipped, with the reason, when not installed
// (make bench-deps installs them), and given fewer messages (peers.go).
package harness
