package wire

import "github.com/busd/busd/topics"

// Hard limits of the format itself, whatever a broker is configured with.
const (
	// HeaderLen is the size of the fixed frame header.
	HeaderLen = 20
	// OriginLen is the size of the origin block that follows a MSG header.
	OriginLen = 20
	// MaxFDsPerFrame is the most fds one frame may carry: the kernel's
	// SCM_MAX_FD, the most one sendmsg can pass.
	MaxFDsPerFrame = 253
	// MaxTopicLen is the longest topic section (a topic or pattern).
	MaxTopicLen = topics.MaxLen
)

// Limits are the bounds a broker enforces and announces in INFO. A frame
// over any of them is refused before its sections are read.
type Limits struct {
	MaxPayload uint32 // payload section bytes
	MaxHeaders uint32 // headers section bytes
	MaxFDs     uint8  // fds per frame, at most MaxFDsPerFrame
}

// DefaultLimits are the limits a broker uses unless configured otherwise.
// 64 MiB payloads let bulk data go inline; 64 fds per frame is well above
// what D-Bus (16) or Wayland (28) allow and well under the kernel's 253.
var DefaultLimits = Limits{
	MaxPayload: 64 << 20,
	MaxHeaders: 64 << 10,
	MaxFDs:     64,
}

// MaxFrame returns the size of the largest frame the limits admit.
func (l Limits) MaxFrame() int {
	return HeaderLen + OriginLen + MaxTopicLen + MaxTopicLen + int(l.MaxHeaders) + int(l.MaxPayload)
}

// SendBuffer is the kernel send buffer the broker asks for on each
// connection, and clients on theirs (the kernel doubles it for its
// bookkeeping, and caps it at net.core.wmem_max: a stock kernel's 208 KiB
// cap gives 416 KiB, this project's test machine's 4 MiB gives all of it).
// A reader in another process is often descheduled for tens of
// microseconds; with the default buffer a busy writer filled it and blocked
// in that time. Measured with make bench (busd only, 4 runs alternating
// builds): pub/sub 1 KiB 550k -> 665k msgs/s, 16 B 2.15M -> 2.37M. The
// kernel uses the memory only while data is in flight.
const SendBuffer = 1 << 20
