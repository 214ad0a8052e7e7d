package topics

import (
	"iter"
	"strings"
	"unicode/utf8"
)

// splitTopic validates topic and splits it into tokens in one pass, for the
// match path: dst should have room for MaxDepth tokens so that nothing is
// allocated. It reports false where ValidTopic would return an error.
func splitTopic(topic string, dst []string) ([]string, bool) {
	if topic == "" || len(topic) > MaxLen {
		return dst, false
	}
	start := 0
	for i := 0; i < len(topic); {
		c := topic[i]
		switch {
		case c == '.':
			if !literalToken(topic[start:i]) || len(dst) == MaxDepth-1 {
				return dst, false
			}
			dst = append(dst, topic[start:i])
			i++
			start = i
		case c > ' ' && c < 0x7f:
			i++
		case c < utf8.RuneSelf:
			return dst, false
		default:
			n, err := checkRune(topic, i)
			if err != nil {
				return dst, false
			}
			i += n
		}
	}
	if !literalToken(topic[start:]) {
		return dst, false
	}
	return append(dst, topic[start:]), true
}

// literalToken reports whether t may be a token of a topic.
func literalToken(t string) bool {
	return len(t) > 1 || len(t) == 1 && t[0] != '*' && t[0] != '>'
}

// tokens yields the tokens of a valid pattern or topic.
func tokens(s string) iter.Seq[string] { return strings.SplitSeq(s, ".") }

// splitValid appends the tokens of an already validated pattern or topic to
// dst, which should have room for MaxDepth tokens.
func splitValid(s string, dst []string) []string {
	for {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return append(dst, s)
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
}
