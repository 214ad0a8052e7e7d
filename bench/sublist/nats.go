// Package sublist puts NATS's subject index (the Sublist of nats-server)
// beside busd's topics.Index, driven by the same workloads, so their
// figures come from one run.
package sublist

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/busd/busd/topics/topicstest"
	"github.com/nats-io/nats-server/v2/server"
)

// NATS's Sublist takes *server.subscription, an unexported type, and returns
// results whose fields are unexported. The adapter reaches them through
// reflection once at start-up and calls the methods through function values
// of the same shape, so that a call costs what it costs inside nats-server.
var (
	natsInsert = (*server.Sublist).Insert
	natsRemove = (*server.Sublist).Remove

	insertFn = *(*func(*server.Sublist, unsafe.Pointer) error)(unsafe.Pointer(&natsInsert))
	removeFn = *(*func(*server.Sublist, unsafe.Pointer) error)(unsafe.Pointer(&natsRemove))

	subType      = reflect.TypeOf(natsInsert).In(1).Elem()
	subjectField = mustField(subType, "subject")
	psubsOffset  = mustField(reflect.TypeOf(server.SublistResult{}), "psubs").Offset
)

func mustField(t reflect.Type, name string) reflect.StructField {
	f, ok := t.FieldByName(name)
	if !ok {
		panic(fmt.Sprintf("nats-server changed: %v has no field %s", t, name))
	}
	return f
}

// newSubscription makes a *server.subscription with the given subject.
func newSubscription(subject string) unsafe.Pointer {
	v := reflect.New(subType)
	p := v.UnsafePointer()
	*(*[]byte)(unsafe.Add(p, subjectField.Offset)) = []byte(subject)
	return p
}

// NATS is nats-server's Sublist as a benchmark System:
// server.NewSublistWithCache() when cached, server.NewSublistNoCache()
// otherwise.
func NATS() topicstest.System {
	return topicstest.System{Name: "nats", New: func(patterns []string, cached bool) topicstest.Subject {
		s := &natsSubject{subs: make([]unsafe.Pointer, len(patterns))}
		if cached {
			s.sl = server.NewSublistWithCache()
		} else {
			s.sl = server.NewSublistNoCache()
		}
		for i, p := range patterns {
			s.subs[i] = newSubscription(p)
		}
		return s
	}}
}

type natsSubject struct {
	sl   *server.Sublist
	subs []unsafe.Pointer
}

func (s *natsSubject) Add(id int) {
	if err := insertFn(s.sl, s.subs[id]); err != nil {
		panic(err)
	}
}

func (s *natsSubject) Remove(id int) {
	if err := removeFn(s.sl, s.subs[id]); err != nil {
		panic(err)
	}
}

func (s *natsSubject) Match(topic string) int {
	r := s.sl.Match(topic)
	return len(*(*[]unsafe.Pointer)(unsafe.Add(unsafe.Pointer(r), psubsOffset)))
}
