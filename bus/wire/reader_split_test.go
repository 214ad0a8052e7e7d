package wire

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/busd/busd/unixsock"
)

// TestNextRefSplitReads feeds NextRef a stream of mixed frames in chunks of
// random sizes, one chunk per read (the writer waits for the idle callback,
// which runs just before each read), so that headers and bodies are split
// anywhere: each frame must come out as DecodeFrame makes it.
func TestNextRefSplitReads(t *testing.T) {
	a, b, err := unixsock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	o := Origin{Conn: 9, PID: 8, UID: 7, GID: 6}
	pub := decode(t, AppendPub(nil, "t.u", "r", AppendField(nil, "k", "v"), []byte("payload"), 0))
	var frames [][]byte
	for i := range 60 {
		switch i % 6 {
		case 0:
			frames = append(frames, AppendMsg(nil, uint32(i+1), &o, &pub))
		case 1:
			frames = append(frames, AppendPub(nil, "a.b", "", nil, bytes.Repeat([]byte{byte(i)}, i*37), 0))
		case 2:
			frames = append(frames, AppendSub(nil, uint32(i), "x.>", "g", 0))
		case 3:
			frames = append(frames, AppendControl(nil, OpPing, uint32(i), nil))
		case 4:
			frames = append(frames, AppendPub(nil, "big", "", nil, bytes.Repeat([]byte{byte(i)}, maxReadBuf+i), 0))
		case 5:
			frames = append(frames, AppendControl(nil, OpPong, 0, nil))
		}
	}
	stream := bytes.Join(frames, nil)
	idle := make(chan struct{}, 1)
	go func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for off := 0; off < len(stream); {
			select {
			case <-idle:
			case <-time.After(5 * time.Second):
				return
			}
			n := min(len(stream)-off, 1+rng.IntN(30))
			if rng.IntN(10) == 0 {
				n = min(len(stream)-off, 1+rng.IntN(3*maxReadBuf))
			}
			if _, err := a.Write(stream[off : off+n]); err != nil {
				return
			}
			off += n
		}
	}()
	b.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := NewReader(b, &DefaultLimits)
	for i, raw := range frames {
		f, err := r.NextRef(func() {
			select {
			case idle <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := decode(t, raw); !reflect.DeepEqual(*f, want) {
			t.Fatalf("frame %d: got %+v; want %+v", i, f.Header, want.Header)
		}
		if !bytes.Equal(r.Raw(), raw) {
			t.Fatalf("frame %d: Raw differs", i)
		}
	}
}
