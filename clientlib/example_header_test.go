package clientlib_test

import (
	"fmt"

	"github.com/busd/busd/clientlib"
)

// A Header keeps its fields in order, a repeated key included: what a
// subscriber gets is what was published, field by field.
func ExampleHeader() {
	m := &clientlib.Msg{Topic: "jobs.build", Data: []byte("make all")}
	m.Header.Add("trace", "42")
	m.Header.Add("via", "ci")
	m.Header.Add("via", "runner-3")

	fmt.Println(m.Header.Get("via"))
	fmt.Println(m.Header.Values("via"))
	for _, f := range m.Header {
		fmt.Printf("%s=%s\n", f.Key, f.Value)
	}
	// Output:
	// ci
	// [ci runner-3]
	// trace=42
	// via=ci
	// via=runner-3
}
