module github.com/busd/busd

go 1.26.0

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/hashicorp/go-msgpack/v2 v2.1.5
	github.com/nats-io/nuid v1.0.1
	golang.org/x/sys v0.49.0
)
