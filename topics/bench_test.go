package topics_test

import (
	"testing"

	"github.com/busd/busd/topics"
	"github.com/busd/busd/topics/topicstest"
)

// BenchmarkIndex runs the index's benchmark matrix; the bench module runs the
// same matrix with NATS's subject index beside it.
func BenchmarkIndex(b *testing.B) { topicstest.Benchmark(b, topicstest.Busd()) }

func BenchmarkValidTopic(b *testing.B) {
	for b.Loop() {
		if topics.ValidTopic("app.editor.document.opened") != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkMatchFunc(b *testing.B) {
	for b.Loop() {
		if !topics.Match("app.*.document.>", "app.editor.document.opened") {
			b.Fatal("no match")
		}
	}
}
