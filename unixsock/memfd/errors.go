package memfd

import "errors"

// Sentinel errors. [Open] returns them wrapped, with the detail (what the
// descriptor is, which seals it lacks, how large it is) in the wrapping
// message, so compare with [errors.Is].
var (
	// ErrNotMemfd means the file handed to [Open] is not an open memfd:
	// F_GET_SEALS failed on it (it is a regular file on a disk file
	// system, a pipe, a socket, a device, ...) or it is closed. The
	// wrapping error also wraps the system's error (EINVAL, EBADF) or
	// [os.ErrClosed].
	ErrNotMemfd = errors.New("memfd: not a memfd")

	// ErrNotSealed means the memfd handed to [Open] lacks one or more of
	// F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE and F_SEAL_SEAL, so its
	// sender could still change its bytes or truncate it under the
	// receiver's mapping. The wrapping error names the missing seals.
	ErrNotSealed = errors.New("memfd: not sealed")

	// ErrTooLarge means the memfd handed to [Open] is larger than the
	// caller's limit. The wrapping error names its size and the limit.
	ErrTooLarge = errors.New("memfd: too large")

	// ErrWrongSize means a memfd's size is not the one its message
	// announced ([Verify], [ReadPayload]): its sender truncated or grew
	// it before sealing, or lied. The wrapping error names both sizes.
	ErrWrongSize = errors.New("memfd: wrong size")
)
