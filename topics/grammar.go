package topics

import (
	"unicode"
	"unicode/utf8"
)

// Limits on topics, patterns and queue group names. They keep a topic small
// enough to live in a fixed stack array while it is matched, and let the
// wire format carry a topic's length in two bytes.
const (
	// MaxLen is the longest topic or pattern, in bytes.
	MaxLen = 1024
	// MaxDepth is the most tokens a topic or pattern may have.
	MaxDepth = 64
	// MaxGroupLen is the longest queue group name, in bytes.
	MaxGroupLen = 255
)

// Wildcard tokens of a pattern.
const (
	// AnyToken matches exactly one token.
	AnyToken = "*"
	// AnyTail matches one or more trailing tokens; it may only come last.
	AnyTail = ">"
)

// ValidTopic reports why s is not a topic one can publish to, or nil if it
// is one. A topic has no wildcard tokens.
func ValidTopic(s string) error { return check("topic", s, false) }

// ValidPattern reports why s is not a subscription pattern, or nil if it is
// one. Every valid topic is also a valid pattern.
func ValidPattern(s string) error { return check("pattern", s, true) }

// ValidGroup reports why s is not a queue group name, or nil if it is one.
// A group name is a single token: non-empty, at most MaxGroupLen bytes, no
// dots, the characters a token may have, and not exactly "*" or ">". A
// group is named, never matched, so a wildcard would mean nothing to the
// broker; refused, it cannot mislead a policy or a tool into reading it as
// "every group" ("a*b" stays an ordinary name, as it is a literal token).
func ValidGroup(s string) error {
	switch {
	case s == "":
		return newError("group", s, 0, ErrEmpty)
	case len(s) > MaxGroupLen:
		return newError("group", s, 0, ErrTooLong)
	case s == AnyToken || s == AnyTail:
		return newError("group", s, 0, ErrWildcard)
	}
	for i := 0; i < len(s); {
		if s[i] == '.' {
			return charError("group", s, 0, i)
		}
		n, err := checkRune(s, i)
		if err == ErrBadChar {
			return charError("group", s, 0, i)
		}
		if err != nil {
			return newError("group", s, 0, err)
		}
		i += n
	}
	return nil
}

// IsLiteral reports whether a valid pattern has no wildcard tokens, so that
// it matches exactly one topic: itself.
func IsLiteral(pattern string) bool {
	start := 0
	for i := 0; i <= len(pattern); i++ {
		if i == len(pattern) || pattern[i] == '.' {
			if i-start == 1 && (pattern[start] == '*' || pattern[start] == '>') {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// check validates s in one pass over its bytes, ASCII on a fast path.
func check(kind, s string, pattern bool) error {
	switch {
	case s == "":
		return newError(kind, s, 0, ErrEmpty)
	case len(s) > MaxLen:
		return newError(kind, s, 0, ErrTooLong)
	}
	token, start := 1, 0
	for i := 0; i < len(s); {
		c := s[i]
		if c != '.' {
			n, err := checkRune(s, i)
			if err == ErrBadChar {
				return charError(kind, s, token, i)
			}
			if err != nil {
				return newError(kind, s, token, err)
			}
			i += n
			continue
		}
		if err := checkToken(s[start:i], pattern, false); err != nil {
			return newError(kind, s, token, err)
		}
		token++
		if token > MaxDepth {
			return newError(kind, s, 0, ErrTooDeep)
		}
		i++
		start = i
	}
	if err := checkToken(s[start:], pattern, true); err != nil {
		return newError(kind, s, token, err)
	}
	return nil
}

// checkToken applies the rules that concern a token as a whole.
func checkToken(t string, pattern, last bool) error {
	if len(t) != 1 {
		if len(t) == 0 {
			return ErrEmptyToken
		}
		return nil
	}
	switch t[0] {
	case '*':
		if !pattern {
			return ErrWildcard
		}
	case '>':
		if !pattern {
			return ErrWildcard
		}
		if !last {
			return ErrWildcardNotLast
		}
	}
	return nil
}

// checkRune validates the character starting at s[i] and returns its length.
// It refuses, besides invalid UTF-8, every code point with the Unicode
// property White_Space or in the general category Cc (controls) or Cf
// (format characters), as unicode.Version defines them: the Cf ones, such
// as U+200B ZERO WIDTH SPACE, U+FEFF and the bidirectional overrides, are
// invisible or reorder what is shown, so that two different topics would
// look alike in a policy or a log. docs/PROTOCOL.md section 3.1 lists them.
func checkRune(s string, i int) (int, error) {
	if c := s[i]; c < utf8.RuneSelf {
		if c <= ' ' || c == 0x7f {
			return 0, ErrBadChar
		}
		return 1, nil
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n == 1 {
		return 0, ErrBadUTF8
	}
	// IsSpace is White_Space exactly, and IsControl is Cc.
	if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
		return 0, ErrBadChar
	}
	return n, nil
}
