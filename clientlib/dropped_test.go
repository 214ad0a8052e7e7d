package clientlib

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A request every responder is too far behind to take fails at once with
// ErrRequestDropped, not with ErrNoResponders and not at its timeout.
func TestRequestEveryResponderIsTooFarBehindFor(t *testing.T) {
	path, _ := startBusWith(t, tinyQueues)
	deafSubscriber(t, path, "busy.svc", "")
	c := connect(t, path)
	flood(t, c, "busy.svc", 256)
	start := time.Now()
	_, err := c.Request(testCtx(t), "busy.svc", make([]byte, 1024))
	if !errors.Is(err, ErrRequestDropped) || errors.Is(err, ErrNoResponders) {
		t.Fatalf("Request to a responder that stopped reading: %v after %v; want ErrRequestDropped",
			err, time.Since(start).Round(time.Millisecond))
	}
	var reply struct{}
	if _, err := c.RequestValue(testCtx(t), "busy.svc", make([]byte, 1024), &reply); !errors.Is(err, ErrRequestDropped) {
		t.Fatalf("RequestValue: %v; want ErrRequestDropped", err)
	}
	if _, err := c.Request(testCtx(t), "nobody.svc", nil); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("Request with no responder: %v; want ErrNoResponders still", err)
	}
}

func TestDialStreamToAListenerTooFarBehind(t *testing.T) {
	path, _ := startBusWith(t, tinyQueues)
	deafSubscriber(t, path, StreamPrefix+"busy", streamGroup)
	c := connect(t, path)
	flood(t, c, StreamPrefix+"busy", 256)
	_, err := c.DialStream(testCtx(t), "busy")
	if !errors.Is(err, ErrRequestDropped) || !strings.Contains(err.Error(), "too busy") {
		t.Fatalf("DialStream to a listener that stopped reading: %v; want ErrRequestDropped, saying the listener is too busy", err)
	}
}
