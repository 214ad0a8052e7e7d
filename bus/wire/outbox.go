package wire

// Outbox is output waiting for a connection's writer: frames in order, in a
// queue of segments, and the descriptors of the frames that carry some. One
// goroutine at a time fills it under its owner's lock; a Sender takes
// segments from its front into a batch and writes them without the lock.
//
// Small frames are copied into chunks. A large frame can instead be queued
// by reference (AppendRef): its bytes are not copied, so one payload queued
// for many receivers is held once.
type Outbox struct {
	segs  []segment // sealed segments, oldest first; cur follows them
	cur   []byte    // the chunk frames are appended to now; nil if none
	marks []fdMark  // descriptors of queued frames, in frame order
	start int64     // stream position of the first queued byte
	end   int64     // stream position just after the last queued byte
	// midFrame is set when the first segment continues a frame whose
	// start was taken into an earlier batch: a discard must keep the rest
	// of that frame, or the peer would read the next frame from its middle.
	midFrame bool
}

// Releaser is told when what it was added with (descriptors, referenced
// bytes) has been sent or dropped, so that it can close or free it.
type Releaser interface{ Release() }

type segment struct {
	buf   []byte
	rel   Releaser // released once the segment is written or dropped
	chunk bool     // buf is a chunk of the free list's, to give back
	open  bool     // a frame continues past buf's end into the next segment
}

type fdMark struct {
	pos int64 // stream position of the frame's first byte
	fds []int
	rel Releaser
}

// Len returns how many bytes are queued.
func (o *Outbox) Len() int { return int(o.end - o.start) }

// End returns the stream position just after the last queued byte: the
// bytes ever queued and not discarded. A writer that has written that many
// bytes has written everything queued so far.
func (o *Outbox) End() int64 { return o.end }

// Reserve returns the buffer the next frame, of n bytes, is to be appended
// to; append the frame to it and pass the result to Commit. n must be at
// most ChunkSize: larger frames go with AppendCopy.
func (o *Outbox) Reserve(n int) []byte {
	if o.cur != nil && cap(o.cur)-len(o.cur) >= n {
		return o.cur
	}
	o.seal(false)
	o.cur = getChunk()
	return o.cur
}

// Commit records the frames appended to the buffer Reserve returned; b is
// that buffer with them appended.
func (o *Outbox) Commit(b []byte) {
	o.end += int64(len(b) - len(o.cur))
	o.cur = b
}

// Append queues one encoded frame, copying it.
func (o *Outbox) Append(frame []byte) { o.AppendCopy(frame) }

// AppendCopy queues one frame made of parts, copying them: into the chunk
// being filled if the frame fits, else spread over as many chunks as it
// takes, so that no frame costs an allocation of its own size.
func (o *Outbox) AppendCopy(parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n <= ChunkSize {
		b := o.Reserve(n)
		for _, p := range parts {
			b = append(b, p...)
		}
		o.Commit(b)
		return
	}
	for _, p := range parts {
		for len(p) > 0 {
			if o.cur == nil || len(o.cur) == cap(o.cur) {
				o.seal(true) // the frame goes on in the next chunk
				o.cur = getChunk()
			}
			k := min(len(p), cap(o.cur)-len(o.cur))
			o.cur = append(o.cur, p[:k]...)
			o.end += int64(k)
			p = p[k:]
		}
	}
}

// AppendRef queues parts, not copied, as the rest of the frame whose first
// bytes were just committed; rel (which may be nil) is released once they
// have been written or dropped. The parts must not change until then.
func (o *Outbox) AppendRef(parts [][]byte, rel Releaser) {
	o.seal(true)
	for i, p := range parts {
		s := segment{buf: p, open: i < len(parts)-1}
		if i == len(parts)-1 {
			s.rel = rel
		}
		o.segs = append(o.segs, s)
		o.end += int64(len(p))
	}
}

// seal closes the current chunk: nothing more is appended to it. open says
// whether the frame at its end continues in the next segment.
func (o *Outbox) seal(open bool) {
	if len(o.cur) > 0 {
		o.segs = append(o.segs, segment{buf: o.cur, chunk: true, open: open})
	} else if o.cur != nil {
		putChunk(o.cur)
	}
	o.cur = nil
}

// AddFDs records that the frame about to be appended carries fds; rel
// (which may be nil) is released once they are sent or dropped.
func (o *Outbox) AddFDs(fds []int, rel Releaser) {
	o.marks = append(o.marks, fdMark{o.end, fds, rel})
}

// HasFDs reports whether any queued frame carries descriptors.
func (o *Outbox) HasFDs() bool { return len(o.marks) > 0 }

// FDs returns how many descriptors the queued frames carry.
func (o *Outbox) FDs() int {
	n := 0
	for _, m := range o.marks {
		n += len(m.fds)
	}
	return n
}

// TakeInto gives the Outbox's oldest segments, at least one and about max
// bytes (limit), to batch for a Sender to write, after recycling what batch held
// (it must have been written whole, or be empty). The caller holds the lock
// that guards o. It takes nothing if o is empty (empty is then true), or if
// o holds descriptors and descOK is false.
func (o *Outbox) TakeInto(batch *Outbox, descOK bool, limit int) (took, empty bool) {
	batch.recycle()
	switch {
	case o.Len() == 0:
		return false, true
	case !descOK && len(o.marks) > 0:
		return false, false
	}
	n, i := 0, 0
	for ; i < len(o.segs) && n < limit; i++ {
		n += len(o.segs[i].buf)
	}
	if i == len(o.segs) && n < limit {
		o.seal(false)
		i = len(o.segs)
	}
	taken := o.segs[:i]
	batch.segs = append(batch.segs, taken...)
	batch.midFrame = o.midFrame
	o.midFrame = taken[i-1].open
	clear(taken)
	o.segs = o.segs[i:]
	if len(o.segs) == 0 {
		o.segs = o.segs[:0:0] // do not keep a drained backlog's array
	}
	batch.start = o.start
	for _, s := range batch.segs {
		o.start += int64(len(s.buf))
	}
	batch.end = o.start
	k := 0
	for k < len(o.marks) && o.marks[k].pos < o.start {
		k++
	}
	batch.marks = append(batch.marks, o.marks[:k]...)
	o.marks = o.marks[:copy(o.marks, o.marks[k:])]
	return true, false
}

// Discard drops every queued frame that has not started to go out, so
// that what is queued next (an ERR before a close) is the next thing the
// peer reads; the rest of a frame whose start was already taken stays
// (with whatever shares its last chunk). It returns how many bytes and
// descriptors it dropped.
func (o *Outbox) Discard() (n, nfds int) {
	before, beforeFDs := o.Len(), o.FDs()
	o.seal(false)
	keep := 0
	if o.midFrame {
		for keep < len(o.segs) && o.segs[keep].open {
			keep++
		}
		keep = min(keep+1, len(o.segs))
	}
	pos := o.start
	for _, s := range o.segs[:keep] {
		pos += int64(len(s.buf))
	}
	releaseSegs(o.segs[keep:])
	o.segs = o.segs[:keep]
	k := 0
	for k < len(o.marks) && o.marks[k].pos < pos {
		k++
	}
	releaseMarks(o.marks[k:])
	o.marks = o.marks[:k]
	o.end = pos
	return before - o.Len(), beforeFDs - o.FDs()
}

// Reset drops everything queued, releasing descriptors and references.
func (o *Outbox) Reset() {
	o.seal(false)
	releaseSegs(o.segs)
	releaseMarks(o.marks)
	o.segs, o.marks = nil, nil
	o.start, o.midFrame = o.end, false
}

// recycle empties a batch that has been written whole: chunks go back to
// the pool, references and descriptors are released.
func (o *Outbox) recycle() {
	for i := range o.segs {
		s := &o.segs[i]
		if s.chunk {
			putChunk(s.buf)
		}
		if s.rel != nil {
			s.rel.Release()
		}
		*s = segment{}
	}
	o.segs = o.segs[:0]
	releaseMarks(o.marks)
	o.marks = o.marks[:0]
	o.start, o.midFrame = o.end, false
}

func releaseSegs(segs []segment) {
	for i := range segs {
		if segs[i].rel != nil {
			segs[i].rel.Release()
		}
		if segs[i].chunk {
			putChunk(segs[i].buf)
		}
		segs[i] = segment{}
	}
}

func releaseMarks(marks []fdMark) {
	for i := range marks {
		if marks[i].rel != nil {
			marks[i].rel.Release()
		}
		marks[i] = fdMark{}
	}
}
