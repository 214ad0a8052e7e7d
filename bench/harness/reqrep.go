package harness

import (
	"sync"
	"sync/atomic"
	"time"
)

// The request/reply roles: a responder that echoes, and a requester that
// keeps j.Inflight requests outstanding (one if zero) and reports each
// round trip and how long all of them took.

func runRep(j *job) error {
	c, err := peer(j)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.serve(reqTopic); err != nil {
		return err
	}
	waitParent()
	return nil
}

// pipeliner is a client that keeps several requests outstanding from one
// goroutine: the raw clients, which have no reading goroutine to hand
// replies to concurrent callers.
type pipeliner interface {
	// pipeline makes count round trips with inflight outstanding and
	// returns each one's latency in µs.
	pipeline(topic string, data []byte, count, inflight int) ([]float64, error)
}

func runReq(j *job) error {
	c, err := sender(j)
	if err != nil {
		return err
	}
	defer c.close()
	payload := make([]byte, j.Size)
	for range 50 { // warm up connections and caches
		if _, err := c.request(reqTopic, payload); err != nil {
			return err
		}
	}
	if err := ready(true); err != nil {
		return err
	}
	t0 := time.Now()
	var lat []float64
	p, pipelines := c.(pipeliner)
	switch {
	case j.Inflight <= 1:
		lat, err = requestSerially(c, payload, j.Count)
	case pipelines:
		lat, err = p.pipeline(reqTopic, payload, j.Count, j.Inflight)
	default:
		lat, err = requestConcurrently(c, payload, j.Count, j.Inflight)
	}
	if err != nil {
		return err
	}
	done(report{Latencies: lat, Seconds: time.Since(t0).Seconds()})
	return nil
}

// requestSerially makes count round trips one at a time.
func requestSerially(c client, payload []byte, count int) ([]float64, error) {
	lat := make([]float64, count)
	for i := range lat {
		t0 := time.Now()
		if _, err := c.request(reqTopic, payload); err != nil {
			return nil, err
		}
		lat[i] = sinceUs(t0)
	}
	return lat, nil
}

// requestConcurrently makes count round trips from inflight goroutines
// sharing the one connection, each calling request in a loop: how a user
// of a client library keeps several requests outstanding.
func requestConcurrently(c client, payload []byte, count, inflight int) ([]float64, error) {
	lat := make([]float64, count)
	var next atomic.Int64 // the index of the next round trip to make
	var wg sync.WaitGroup
	errs := make(chan error, inflight)
	for range inflight {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				t0 := time.Now()
				if _, err := c.request(reqTopic, payload); err != nil {
					errs <- err
					next.Store(int64(count)) // stop the others
					return
				}
				lat[i] = sinceUs(t0)
			}
		})
	}
	wg.Wait()
	close(errs)
	return lat, <-errs
}

func sinceUs(t0 time.Time) float64 { return float64(time.Since(t0).Nanoseconds()) / 1e3 }
