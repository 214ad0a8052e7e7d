package clientlib

// Large payloads (docs/PROTOCOL.md section 6.1). A payload over the
// connection's threshold, or over the broker's max_payload, is not copied
// through the socket: the publisher writes it into a new memfd with
// pwrite, seals it, and sends the descriptor, with the payload's size as
// the PUB's 8-byte payload section and flag 0x02. The broker routes the
// descriptor like any other, never reading it, and each receiver checks
// the seals and the size and reads the bytes with pread into memory of
// its own (or, with PayloadFiles, takes the descriptor as it is).

// DefaultLargePayloadThreshold is the payload size above which a message
// goes in a sealed memfd rather than inline, unless
// WithLargePayloadThreshold says otherwise.
const DefaultLargePayloadThreshold = 256 << 10

// WithLargePayloadThreshold sets the payload size in bytes above which
// Publish (and every call that publishes) sends the payload in a sealed
// memfd instead of inline, when the broker takes payloads in memfds (its
// INFO announces max_fd_payload); default DefaultLargePayloadThreshold.
// 0 sends every non-empty payload in a memfd; a negative value never does,
// so a payload over the broker's max_payload is then refused with
// ErrTooLarge. Whatever the threshold, a payload over max_payload goes in
// a memfd if the broker takes them, and retained messages, requests to
// the broker ($SYS.req.) and wills always go inline.
func WithLargePayloadThreshold(bytes int) Option {
	return func(o *options) error {
		o.largeThreshold = bytes
		return nil
	}
}

// PayloadFiles makes the subscription take a payload that came in a memfd
// as the file itself, not its bytes: Msg.PayloadFile is the memfd,
// checked (memfd, sealed, of the size announced), and Msg.Data is nil. The
// receiver owns the file and closes it (Msg.CloseFiles does). It is for
// receivers that pass the bytes on without reading them all (write them to
// a file with io.Copy, which the kernel does itself; map them with
// memfd.Open), so a payload of any size costs them no memory of their
// own. Payloads that came inline are in Data as always.
func PayloadFiles() SubOption { return func(c *subConfig) { c.payloadFiles = true } }
