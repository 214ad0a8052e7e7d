package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/busd/busd/topics"
)

// ErrSyntax is what every error of Parse wraps.
var ErrSyntax = errors.New("policy: syntax error")

// SyntaxError is a policy file's first error: where it is and what is
// wrong, with the line quoted.
type SyntaxError struct {
	File string
	Line int // from 1; 0 for a problem with the file as a whole
	Text string
	Err  error
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v\n\t%s", e.File, e.Line, e.Err, e.Text)
}

// Unwrap returns ErrSyntax and the cause, so errors.Is finds either.
func (e *SyntaxError) Unwrap() []error { return []error{ErrSyntax, e.Err} }

// Verb is an action a rule allows or denies.
type Verb uint8

// The verbs.
const (
	// Publish: send a message to a topic.
	Publish Verb = iota
	// Subscribe: receive the messages on the topics a pattern matches.
	Subscribe
	// Reply: answer a request that arrived on a topic, once, to the
	// requester's inbox.
	Reply
	// Listen: take the dials of a stream name.
	Listen
	// Dial: open a direct stream to a stream name's listener.
	Dial
	// Monitor: see, on a subscription, replies sent to other connections'
	// inboxes.
	Monitor
	// Own: own (or queue for) a well-known name, and subscribe to the
	// topics of names ("_NAME.…"). Decided on the name.
	Own
	nVerbs
)

var verbNames = [nVerbs]string{"publish", "subscribe", "reply", "listen", "dial", "monitor", "own"}

func (v Verb) String() string {
	if v < nVerbs {
		return verbNames[v]
	}
	return "verb(" + strconv.Itoa(int(v)) + ")"
}

// allVerbs is what "all" stands for: every verb but Monitor, which sees
// other connections' private traffic and so must be named.
const allVerbs = 1<<Publish | 1<<Subscribe | 1<<Reply | 1<<Listen | 1<<Dial | 1<<Own

// Rule is one line of a policy.
type Rule struct {
	// Line is the rule's line in its file, from 1; 0 for the rules every
	// policy ends with.
	Line  int
	Allow bool
	// Any makes the rule apply to every connection; otherwise to those
	// whose uid is in UIDs or one of whose groups is in GIDs.
	Any      bool
	UIDs     []uint32
	GIDs     []uint32
	Verbs    uint8    // a bit per Verb
	Patterns []string // as written, %uid and %gid not yet replaced
	text     string
}

// String returns the rule as a denial names it: where it is, and what it
// says.
func (r *Rule) String() string {
	if r.Line == 0 {
		return "the default rule (" + r.text + ")"
	}
	return fmt.Sprintf("rule at line %d (%s)", r.Line, r.text)
}

// Has reports whether the rule speaks for v.
func (r *Rule) Has(v Verb) bool { return r.Verbs&(1<<v) != 0 }

// Policy is a parsed policy file: its rules in order, without the two that
// end every policy (For adds them).
type Policy struct {
	// Source names where the rules came from, for logs.
	Source string
	Rules  []Rule

	// shared are the Subjects For made, by identity (decide.go).
	mu     sync.Mutex
	shared map[string]*Subject
}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a policy; name says where it comes from in errors, which
// give the line of the first problem and wrap ErrSyntax. A word starting
// with "#" starts a comment; a line is refused if a "#" is inside a word
// (uncomment) or it has a control character (checkLineChars), so that a
// line means what it shows.
func Parse(name string, r io.Reader) (*Policy, error) {
	p := &Policy{Source: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<10)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r") // a file with CRLF line ends
		if err := checkLineChars(text); err != nil {
			// Quoted: the raw line would do to the log what it does to
			// a terminal.
			return nil, &SyntaxError{File: name, Line: line, Text: strconv.Quote(text), Err: err}
		}
		fields, err := uncomment(strings.Fields(text))
		if err == nil && len(fields) == 0 {
			continue
		}
		var rule Rule
		if err == nil {
			rule, err = parseRule(fields)
		}
		if err != nil {
			return nil, &SyntaxError{File: name, Line: line, Text: strings.TrimSpace(text), Err: err}
		}
		rule.Line = line
		p.Rules = append(p.Rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, &SyntaxError{File: name, Err: err}
	}
	return p, nil
}

// uncomment returns a line's fields before its comment: a field starting
// with "#" starts one, which runs to the end of the line. A "#" inside a
// field is refused, not taken to start a comment there: "#" is a
// character topics may have, and either reading of "chan#ops" (a pattern,
// or "chan" and a comment) would make some rule mean what its author did
// not write; a deny rule cut short denies less than it says.
func uncomment(fields []string) ([]string, error) {
	for i, f := range fields {
		switch j := strings.IndexByte(f, '#'); {
		case j == 0:
			return fields[:i], nil
		case j > 0:
			return nil, fmt.Errorf("%q: # starts a comment only at the start of a word; inside one it is refused, as it could be meant either way (name topics with # by a wildcard)", f)
		}
	}
	return fields, nil
}

// checkLineChars refuses a line with a control character other than tab,
// or a line or paragraph separator: shown in a terminal or an editor, such
// a line can look like something else (a carriage return draws what
// follows over the start of the line, so a rule can pass for a comment or
// a comment for a rule; U+2028 looks like a line break that is none).
func checkLineChars(line string) error {
	for i, r := range line {
		if r != '\t' && unicode.Is(unicode.Cc, r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("byte %d is the control character %U: it can make the line look like something it is not, so it is refused", i, r)
		}
	}
	return nil
}

const ruleForm = "a rule is: allow|deny uid N[,N…]|gid N[,N…]|any VERBS PATTERN…"

func parseRule(f []string) (Rule, error) {
	var r Rule
	switch f[0] {
	case "allow":
		r.Allow = true
	case "deny":
	default:
		return r, fmt.Errorf("%q: a rule starts with allow or deny; %s", f[0], ruleForm)
	}
	rest := f[1:]
	if len(rest) == 0 {
		return r, errors.New(ruleForm)
	}
	switch rest[0] {
	case "any":
		r.Any, rest = true, rest[1:]
	case "uid", "gid":
		if len(rest) < 2 {
			return r, fmt.Errorf("%s needs a list of numeric ids; %s", rest[0], ruleForm)
		}
		ids, err := parseIDs(rest[0], rest[1])
		if err != nil {
			return r, err
		}
		if rest[0] == "uid" {
			r.UIDs = ids
		} else {
			r.GIDs = ids
		}
		rest = rest[2:]
	default:
		return r, fmt.Errorf("%q: who the rule is for is uid N, gid N or any; %s", rest[0], ruleForm)
	}
	if len(rest) < 2 {
		return r, fmt.Errorf("the rule needs verbs and at least one pattern; %s", ruleForm)
	}
	verbs, err := parseVerbs(rest[0])
	if err != nil {
		return r, err
	}
	r.Verbs = verbs
	for _, p := range rest[1:] {
		// A pattern must be valid as written, and whatever ids replace
		// %uid and %gid (they may make it longer).
		if err := topics.ValidPattern(p); err != nil {
			return r, err
		}
		if err := topics.ValidPattern(substitute(p, 4294967295, 4294967295)); err != nil {
			return r, fmt.Errorf("pattern %q with the longest ids in place of %%uid and %%gid: %w", p, err)
		}
		if strings.Count(p, "%") != strings.Count(p, "%uid")+strings.Count(p, "%gid") {
			return r, fmt.Errorf("pattern %q: %% may only start %%uid or %%gid", p)
		}
	}
	r.Patterns = slices.Clone(rest[1:])
	r.text = strings.Join(f, " ")
	return r, nil
}

func parseIDs(kind, list string) ([]uint32, error) {
	var ids []uint32
	for s := range strings.SplitSeq(list, ",") {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s %q: ids are decimal numbers (names are not looked up: a rule must mean the same whatever the name service says)", kind, s)
		}
		ids = append(ids, uint32(n))
	}
	return ids, nil
}

func parseVerbs(list string) (uint8, error) {
	var bits uint8
	for s := range strings.SplitSeq(list, ",") {
		if s == "all" {
			bits |= allVerbs
			continue
		}
		i := slices.Index(verbNames[:], s)
		if i < 0 {
			return 0, fmt.Errorf("verb %q: the verbs are all, %s", s, strings.Join(verbNames[:], ", "))
		}
		bits |= 1 << i
	}
	return bits, nil
}

// substitute replaces %uid and %gid in a pattern.
func substitute(p string, uid, gid uint32) string {
	if !strings.Contains(p, "%") {
		return p
	}
	p = strings.ReplaceAll(p, "%uid", strconv.FormatUint(uint64(uid), 10))
	return strings.ReplaceAll(p, "%gid", strconv.FormatUint(uint64(gid), 10))
}
