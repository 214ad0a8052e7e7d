package wire

import (
	"errors"

	"github.com/busd/busd/unixsock"
)

// Read buffer sizes. A connection starts small, so an idle one costs little,
// grows while reads fill its buffer, and shrinks back once traffic calms.
const (
	minReadBuf = 1 << 10
	maxReadBuf = 64 << 10
)

// MaxQueuedFDs bounds descriptors received but not yet claimed by a frame:
// two sendmsg calls' worth. A peer that sends descriptors without frames to
// claim them cannot make the receiver hold more.
const MaxQueuedFDs = 2 * unixsock.MaxFDsPerMessage

// Reader cuts a socket's byte stream into frames, checking each header
// against its limits before reading the rest. A frame's sections are views
// into the Reader's buffer, valid until the next call to Next. Descriptors
// stay queued in the socket until the caller takes a frame's NFDs of them.
type Reader struct {
	sock  *unixsock.Conn
	lim   *Limits
	buf   []byte
	r, w  int   // unread bytes are buf[r:w]
	quiet int   // consecutive reads that used little of the buffer
	last  int   // size of the frame Next returned last
	frame Frame // what NextRef returns

	// Set by SetLargeFrames.
	piece int             // bytes per piece of a large frame; 0: large frames are read whole
	grow  func(int) error // approves each piece before it is allocated
	large bool            // a large frame is being read
}

// NewReader returns a Reader of sock's frames within lim. lim is read on
// every frame, so it may be updated (for example once INFO arrives) between
// calls to Next from the same goroutine.
func NewReader(sock *unixsock.Conn, lim *Limits) *Reader {
	return &Reader{sock: sock, lim: lim}
}

// Next returns the next whole frame. Before it blocks on the socket it calls
// idle (if not nil), so that the caller can act once on everything read so
// far: the end of a read batch. Errors are the socket's, or an *Error with a
// fatal code.
func (fr *Reader) Next(idle func()) (Frame, error) {
	f, err := fr.NextRef(idle)
	if err != nil {
		return Frame{}, err
	}
	return *f, nil
}

// NextRef is Next without copying the frame out: the Frame it returns is
// the Reader's own, overwritten by the next call. For the hot loops of
// readers that handle each frame before reading the next.
func (fr *Reader) NextRef(idle func()) (*Frame, error) {
	for {
		if fr.w-fr.r >= HeaderLen {
			// Straight into the Frame this returns, with no copy of the
			// header on the way: the one the last call returned is over.
			f := &fr.frame
			if err := decodeHeaderInto(&f.Header, fr.buf[fr.r:fr.w], fr.lim); err != nil {
				return nil, err
			}
			size := f.Size()
			if fr.w-fr.r >= size {
				f.setSections(fr.buf[fr.r : fr.r+size])
				fr.r += size
				fr.last = size
				return f, nil
			}
			if fr.piece > 0 && size > maxReadBuf {
				return fr.readLarge(f, idle)
			}
			fr.makeRoom(size)
		} else {
			fr.makeRoom(HeaderLen)
		}
		if idle != nil {
			idle()
		}
		n, err := fr.read(fr.buf[fr.w:])
		fr.w += n
		fr.adapt(n)
		if err != nil {
			return nil, err
		}
	}
}

// read reads from the socket into b, turning what the socket layer reports
// about descriptors into the protocol's errors.
func (fr *Reader) read(b []byte) (int, error) {
	n, err := fr.sock.Read(b)
	if err != nil {
		if errors.Is(err, unixsock.ErrFDBudget) {
			return n, Errorf(CodeBudget, "more descriptors in one read than the receiver's budget allowed")
		}
		if errors.Is(err, unixsock.ErrFDsTruncated) {
			return n, Errorf(CodeTooManyFDs,
				"more descriptors in one sendmsg than the receiver accepts (%d)", unixsock.MaxFDsPerMessage)
		}
		return n, err
	}
	if q := fr.sock.QueuedFDs(); q > MaxQueuedFDs {
		return n, Errorf(CodeTooManyFDs,
			"%d descriptors received that no frame has claimed; the limit is %d", q, MaxQueuedFDs)
	}
	return n, nil
}

// piece returns a buffer of n bytes for a large frame: a chunk of the free
// list when it fits in one (see PutPieces).
func piece(n int) []byte {
	if n <= ChunkSize {
		return getChunk()[:n]
	}
	return make([]byte, n)
}

// SetLargeFrames makes the Reader read a frame larger than its buffer in
// pieces of piece bytes, each allocated only once the bytes before it have
// arrived and after grow(size) has approved it (grow's error ends the read
// with it), instead of in one buffer of the frame's declared size: a peer
// that announces a large frame and never sends it then holds at most one
// piece. Such a frame comes back with Body set and Payload nil; its pieces
// are the caller's to keep, and the Reader never writes into them again
// (the caller may give them back with PutPieces once nothing refers to
// them). A piece size of ChunkSize reads into chunks of the free list.
// The first piece holds at least the header, origin, topic, reply and
// headers, so those sections stay contiguous.
func (fr *Reader) SetLargeFrames(piece int, grow func(size int) error) {
	fr.piece, fr.grow = max(piece, maxReadBuf), grow
}

// Partial reports whether the Reader holds part of a frame: bytes read and
// not yet returned as a whole frame.
func (fr *Reader) Partial() bool { return fr.large || fr.w > fr.r }

// readLarge reads the rest of the large frame whose header f holds and
// whose first bytes are buffered, piece by piece (see SetLargeFrames).
func (fr *Reader) readLarge(f *Frame, idle func()) (*Frame, error) {
	fr.large = true // until the frame is whole: Partial says so after an error too
	body := f.Size() - HeaderLen
	have := fr.buf[fr.r+HeaderLen : fr.w] // the body's bytes read so far
	fr.r, fr.w = 0, 0
	pieces := make([][]byte, 0, (body+fr.piece-1)/fr.piece)
	first := max(fr.piece, f.prefixLen()-HeaderLen)
	for left := body; left > 0; {
		n := min(left, fr.piece)
		if len(pieces) == 0 {
			n = min(left, first)
		}
		if err := fr.grow(n); err != nil {
			return nil, err
		}
		p := piece(n)
		got := copy(p, have)
		have = have[got:]
		for got < n {
			if idle != nil {
				idle()
			}
			k, err := fr.read(p[got:])
			got += k
			if err != nil {
				return nil, err
			}
		}
		pieces = append(pieces, p)
		left -= n
	}
	fr.large = false
	fr.adapt(0)
	f.setBody(pieces)
	return f, nil
}

// Raw returns the encoded bytes of the frame Next returned last, for
// relays that forward frames untouched. They are valid until the next call
// to Next.
func (fr *Reader) Raw() []byte { return fr.buf[fr.r-fr.last : fr.r] }

// Keep hands the bytes of the frame Next or NextRef returned last to the
// caller, if that frame had a buffer of its own (it was larger than the
// largest read buffer, and nothing after it has been read): the Reader then
// starts a new buffer and never writes into those bytes again, so a
// receiver can keep a large payload without copying it. It reports whether
// it did; if not, the frame is valid only until the next read, as usual.
func (fr *Reader) Keep() bool {
	if fr.last <= maxReadBuf || fr.last != len(fr.buf) || fr.r != fr.last || fr.w != fr.r {
		return false
	}
	fr.buf, fr.r, fr.w, fr.quiet, fr.last = nil, 0, 0, 0, 0
	return true
}

// makeRoom makes buf able to hold a frame of size bytes from r, moving the
// unread bytes to the front. A frame larger than maxReadBuf gets a buffer of
// its own size, given back after that frame (see adapt).
func (fr *Reader) makeRoom(size int) {
	if fr.r == fr.w {
		fr.r, fr.w = 0, 0
	}
	if len(fr.buf)-fr.r >= size && fr.w < len(fr.buf) {
		return
	}
	n := max(len(fr.buf), minReadBuf)
	for n < size {
		n *= 2
	}
	if size > maxReadBuf {
		n = size
	}
	if n == len(fr.buf) {
		copy(fr.buf, fr.buf[fr.r:fr.w]) // compact in place
	} else {
		nb := make([]byte, n)
		copy(nb, fr.buf[fr.r:fr.w])
		fr.buf = nb
	}
	fr.w -= fr.r
	fr.r = 0
}

// adapt grows the buffer when a read filled it and shrinks an oversized or
// mostly unused one when nothing is left unread.
func (fr *Reader) adapt(n int) {
	switch {
	case fr.w == len(fr.buf) && len(fr.buf) < maxReadBuf:
		nb := make([]byte, len(fr.buf)*2)
		copy(nb, fr.buf[fr.r:fr.w])
		fr.buf, fr.w, fr.r = nb, fr.w-fr.r, 0
		fr.quiet = 0
	case n < len(fr.buf)/8:
		fr.quiet++
	default:
		fr.quiet = 0
	}
	if fr.r == fr.w && (len(fr.buf) > maxReadBuf || fr.quiet > 16 && len(fr.buf) > minReadBuf) {
		fr.buf, fr.r, fr.w, fr.quiet = make([]byte, minReadBuf), 0, 0, 0
	}
}
