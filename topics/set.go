package topics

// bigSet is the size from which a set keeps a position map, so that removing
// one of many subscribers to the same pattern costs O(1) instead of a scan.
const bigSet = 16

// set holds the subscriber values of one pattern (or one queue group of
// it). Values are unique; order is not kept.
type set[T comparable] struct {
	list []T
	pos  map[T]int32 // index of each value in list; nil while the set is small
}

// add inserts v and reports whether it was absent.
func (s *set[T]) add(v T) bool {
	if s.find(v) >= 0 {
		return false
	}
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
	return true
}

// remove deletes v and reports whether it was present.
func (s *set[T]) remove(v T) bool {
	i := s.find(v)
	if i < 0 {
		return false
	}
	last := len(s.list) - 1
	moved := s.list[last]
	s.list[i] = moved
	var zero T
	s.list[last] = zero // let the value be collected
	s.list = s.list[:last]
	if s.pos != nil {
		delete(s.pos, v)
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
	return true
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
