package clientlib_test

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/busd/busd/clientlib"
)

// A payload of any size goes through Publish as it is: over the
// large-payload threshold it travels as a sealed memfd, and arrives as
// Data in the receiver's own memory. Nothing in the code says so; the
// publisher's Stats show that its 64 MiB did not go through the socket.
func ExampleConn_Publish_large() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	camera, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer camera.Close()
	viewer, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer viewer.Close()
	sub, err := viewer.SubscribeSync("camera.frame")
	if err != nil {
		panic(err)
	}
	viewer.Flush(ctx) // subscribed before the frame goes

	frame := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	if err := camera.Publish("camera.frame", frame); err != nil {
		panic(err)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(m.Data)>>20, "MiB, intact:", bytes.Equal(m.Data, frame))
	if camera.Stats().BytesOut < 4<<10 {
		fmt.Println("written to the socket: under 4 KiB")
	}
	// Output:
	// 64 MiB, intact: true
	// written to the socket: under 4 KiB
}
