package topics

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors. Every grammar error returned by this package is an
// [*Error] that unwraps to one of the first group and also matches
// [ErrInvalid] under errors.Is.
var (
	// ErrInvalid matches every grammar error, whatever the reason.
	ErrInvalid = errors.New("topics: invalid topic")
	// ErrEmpty is returned for an empty topic, pattern or group name.
	ErrEmpty = errors.New("is empty")
	// ErrEmptyToken is returned when two dots meet or the input starts or
	// ends with a dot.
	ErrEmptyToken = errors.New("is empty")
	// ErrTooLong is returned for input longer than MaxLen bytes (or
	// MaxGroupLen for a group name).
	ErrTooLong = errors.New("is too long")
	// ErrTooDeep is returned for input with more than MaxDepth tokens.
	ErrTooDeep = errors.New("has too many tokens")
	// ErrBadChar is returned for a character a token may not have:
	// whitespace, a control or format character, or a dot in a group name.
	ErrBadChar = errors.New("has a forbidden character")
	// ErrBadUTF8 is returned for bytes that are not valid UTF-8.
	ErrBadUTF8 = errors.New("is not valid UTF-8")
	// ErrWildcard is returned for a wildcard token in a topic one publishes to.
	ErrWildcard = errors.New("is a wildcard, which only patterns may use")
	// ErrWildcardNotLast is returned for a ">" token that is not the last.
	ErrWildcardNotLast = errors.New("is '>' but not the last token")
)

// Errors of the subscription index.
var (
	// ErrExists is returned by Index.Add for a subscription already present.
	ErrExists = errors.New("topics: subscription already exists")
	// ErrNotFound is returned by Index.Remove for a subscription not present.
	ErrNotFound = errors.New("topics: no such subscription")
)

// Error describes invalid input: what kind of input it was, the input
// itself (shortened when long), which token is at fault, and why.
type Error struct {
	Kind  string // "topic", "pattern" or "group"
	Input string // the input, cut to a readable length
	Token int    // 1-based token number, or 0 when the input as a whole is at fault
	Err   error  // one of the grammar sentinels
	// Char is the character at fault when Err is ErrBadChar: named in the
	// message, because the ones refused are mostly invisible.
	Char rune
}

// maxShown bounds how much of a bad input an error message repeats, so a
// 1 MiB topic yields a short message.
const maxShown = 64

func newError(kind, input string, token int, err error) *Error {
	if len(input) > maxShown {
		input = input[:maxShown] + "…"
	}
	return &Error{Kind: kind, Input: input, Token: token, Err: err}
}

// charError is the ErrBadChar error for the character at s[i].
func charError(kind, s string, token, i int) *Error {
	e := newError(kind, s, token, ErrBadChar)
	e.Char, _ = utf8.DecodeRuneInString(s[i:])
	return e
}

// Error returns a message such as `topic "a..b": token 2 is empty` or
// `topic "a\u200bb": token 1 has a forbidden character U+200B '\u200b'`.
func (e *Error) Error() string {
	where := ""
	if e.Token > 0 {
		where = "token " + strconv.Itoa(e.Token) + " "
	}
	detail := e.Err.Error()
	switch e.Err {
	case ErrTooLong:
		limit := MaxLen
		if e.Kind == "group" {
			limit = MaxGroupLen
		}
		detail = fmt.Sprintf("%s (limit %d bytes)", detail, limit)
	case ErrTooDeep:
		detail = fmt.Sprintf("%s (limit %d)", detail, MaxDepth)
	case ErrBadChar:
		detail += " " + charName(e.Char)
	}
	return fmt.Sprintf("%s %q: %s%s", e.Kind, e.Input, where, detail)
}

// charName names a character by its code point and as Go (and a shell's
// $'...') escapes it, as in U+002E '.', U+0009 '\t' or U+200B '\u200b':
// most of the characters refused are invisible, and the escape is what to
// look for in the input.
func charName(r rune) string {
	return fmt.Sprintf("%U %s", r, strconv.QuoteRune(r))
}

// Unwrap returns the sentinel naming the reason.
func (e *Error) Unwrap() error { return e.Err }

// Is makes every grammar error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }
