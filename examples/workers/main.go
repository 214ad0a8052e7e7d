// Command workers shares jobs out among a queue group of workers.
//
// Start a bus (make run), two or more workers, each in a terminal of its
// own, then hand them jobs:
//
//	go run ./examples/workers -work alice
//	go run ./examples/workers -work bob
//	go run ./examples/workers -jobs 10
//
// Each worker subscribes to "jobs.*" as a member of the queue group
// "workers", and job n is published on "jobs.n". For every message, the
// broker picks one member of each matching queue group, uniformly at random
// and afresh for each message: a job goes to exactly one worker, and the load
// evens out over many jobs, though not in turn, so a short run may be
// lopsided. Plain subscribers are not affected and still get every message:
// `bus sub 'jobs.>'` beside the workers sees all the jobs.
//
// Jobs are sent as requests, and a worker's reply is its name, so the sender
// can say who did each job.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
)

const (
	jobPattern = "jobs.*"
	group      = "workers"
)

func main() {
	work := flag.String("work", "", "run a worker named `NAME` until interrupted")
	jobs := flag.Int("jobs", 0, "send `N` jobs and say which worker did each")
	flag.Parse()
	// A worker runs until SIGINT or SIGTERM, then exits with status 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := clientlib.Connect(connectCtx, clientlib.WithName("workers-example"))
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	switch {
	case *work != "":
		err = runWorker(ctx, c, *work)
	case *jobs > 0:
		err = sendJobs(ctx, c, *jobs)
	default:
		err = errors.New("give -work NAME or -jobs N")
	}
	if err != nil {
		log.Fatal(err)
	}
}

// runWorker does the jobs the broker gives this member of the group, until
// ctx ends.
func runWorker(ctx context.Context, c *clientlib.Conn, name string) error {
	sub, err := c.QueueSubscribe(jobPattern, group, func(m *clientlib.Msg) {
		fmt.Printf("%s: %s\n", name, m.Topic)
		if err := m.Respond([]byte(name)); err != nil {
			log.Printf("replying to %s: %v", m.Topic, err)
		}
	})
	if err != nil {
		return fmt.Errorf("joining queue group %s: %w", group, err)
	}
	// Once Flush returns the broker counts this worker in, so jobs sent
	// after "ready" may come here.
	if err := c.Flush(ctx); err != nil {
		return fmt.Errorf("joining queue group %s: %w", group, err)
	}
	fmt.Fprintf(os.Stderr, "worker %s ready\n", name)
	<-ctx.Done()
	// Leave the group without dropping jobs already on their way here:
	// Drain finishes them first. Closing the connection would lose them.
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return sub.Drain(dctx)
}

// sendJobs sends n jobs, prints who did each, and then how many each did.
func sendJobs(ctx context.Context, c *clientlib.Conn, n int) error {
	done := map[string]int{} // jobs per worker
	// One job at a time keeps the output in order. Request is safe for
	// many goroutines, so a real dispatcher would keep several in flight.
	for i := range n {
		worker, err := doJob(ctx, c, i)
		if err != nil {
			return err
		}
		fmt.Printf("job %d done by %s\n", i, worker)
		done[worker]++
	}
	var counts []string
	for _, worker := range slices.Sorted(maps.Keys(done)) {
		counts = append(counts, fmt.Sprintf("%s %d", worker, done[worker]))
	}
	fmt.Printf("%d jobs: %s\n", n, strings.Join(counts, ", "))
	return nil
}

// doJob hands job i to whichever worker the broker picks and returns that
// worker's name.
func doJob(ctx context.Context, c *clientlib.Conn, i int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, "jobs."+strconv.Itoa(i), nil)
	if errors.Is(err, clientlib.ErrNoResponders) {
		return "", fmt.Errorf("is a worker running (-work NAME)? %w", err)
	}
	if err != nil {
		return "", err
	}
	return string(reply.Data), nil
}
