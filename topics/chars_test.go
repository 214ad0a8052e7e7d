package topics

import (
	"errors"
	"testing"
	"unicode"
	"unicode/utf8"
)

// refusedRanges are the code points a token may not have, exactly as
// docs/PROTOCOL.md section 3.1 lists them for Unicode 15.0.0: White_Space,
// then Cc, then Cf. If Go's tables move to a later Unicode version, this
// test fails until the list (and the document) says what changed.
var refusedRanges = [][2]rune{
	// White_Space
	{0x0009, 0x000D}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00A0, 0x00A0},
	{0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F},
	{0x205F, 0x205F}, {0x3000, 0x3000},
	// Cc
	{0x0000, 0x001F}, {0x007F, 0x009F},
	// Cf
	{0x00AD, 0x00AD}, {0x0600, 0x0605}, {0x061C, 0x061C}, {0x06DD, 0x06DD},
	{0x070F, 0x070F}, {0x0890, 0x0891}, {0x08E2, 0x08E2}, {0x180E, 0x180E},
	{0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F},
	{0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB}, {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
	{0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
	{0xE0020, 0xE007F},
}

func documentedRefusal(r rune) bool {
	for _, rg := range refusedRanges {
		if rg[0] <= r && r <= rg[1] {
			return true
		}
	}
	return false
}

// Every code point is refused in a token exactly when the document says
// so, and the refusal names it.
func TestRefusedCodePointsAreTheDocumentedOnes(t *testing.T) {
	if unicode.Version != "15.0.0" {
		t.Fatalf("Go's Unicode tables are version %s; PROTOCOL.md section 3.1 lists 15.0.0's", unicode.Version)
	}
	buf := make([]byte, 0, 8)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r == '.' || utf8.RuneLen(r) < 0 { // the separator; surrogates cannot be encoded
			continue
		}
		buf = utf8.AppendRune(append(buf[:0], 'x'), r)
		_, err := checkRune(string(buf), 1)
		want := documentedRefusal(r)
		if got := err != nil; got != want {
			t.Errorf("%U: refused %v (%v); the document says %v", r, got, err, want)
			continue
		}
		if !want {
			continue
		}
		var e *Error
		if err := ValidTopic(string(buf)); !errors.As(err, &e) || e.Char != r || !errors.Is(err, ErrBadChar) {
			t.Errorf("%U: ValidTopic says %v; want ErrBadChar naming the character", r, err)
		}
	}
}

// The three properties, and nothing else, are what the document's list
// stands for: its ranges are generated from them, not picked by hand.
func TestRefusedRangesAreTheProperties(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		prop := unicode.In(r, unicode.White_Space, unicode.Cc, unicode.Cf)
		if prop != documentedRefusal(r) {
			t.Errorf("%U: White_Space/Cc/Cf %v, listed %v", r, prop, documentedRefusal(r))
		}
	}
}
