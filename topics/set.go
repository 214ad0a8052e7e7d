package topics

// bigSet is the size from which a set keeps a position map, so that finding
// or removing one of many values costs O(1) instead of a scan.
const bigSet = 16

// set holds the subscriber values of one pattern (or one queue group of
// it), or the names of a pattern's queue groups. Values are unique; order is
// not kept.
type set[T comparable] struct {
	list []T
	pos  map[T]int32 // index of each value in list; nil while the set is small
}

// add inserts v and reports whether it was absent.
func (s *set[T]) add(v T) bool {
	if s.find(v) >= 0 {
		return false
	}
	s.push(v)
	return true
}

// push appends v, which must be absent.
func (s *set[T]) push(v T) {
	s.list = append(s.list, v)
	switch {
	case s.pos != nil:
		s.pos[v] = int32(len(s.list) - 1)
	case len(s.list) > bigSet:
		s.pos = make(map[T]int32, len(s.list))
		for i, w := range s.list {
			s.pos[w] = int32(i)
		}
	}
}

// remove deletes v and reports whether it was present.
func (s *set[T]) remove(v T) bool {
	i := s.find(v)
	if i < 0 {
		return false
	}
	s.cut(i)
	return true
}

// cut deletes the value at index i by moving the last value into its place,
// which is what a slice kept parallel to list must do too.
func (s *set[T]) cut(i int) {
	last := len(s.list) - 1
	gone, moved := s.list[i], s.list[last]
	s.list[i] = moved
	var zero T
	s.list[last] = zero // let the value be collected
	s.list = s.list[:last]
	if s.pos != nil {
		delete(s.pos, gone)
		if i != last {
			s.pos[moved] = int32(i)
		}
		if len(s.list) <= bigSet/2 {
			s.pos = nil
		}
	}
	if last == 0 {
		s.list = nil
	}
}

func (s *set[T]) find(v T) int {
	if s.pos != nil {
		if i, ok := s.pos[v]; ok {
			return int(i)
		}
		return -1
	}
	for i, w := range s.list {
		if w == v {
			return i
		}
	}
	return -1
}
