package activation

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/busd/busd/topics"
)

// Suffix ends the name of every service file: the service of name N is
// DIR/N.service.
const Suffix = ".service"

// Bounds on a service file.
const (
	// MaxFileSize is the largest service file read, in bytes.
	MaxFileSize = 64 << 10
	// MaxNameLen is the longest name, in bytes.
	MaxNameLen = 255
	// MaxEnv is the most env lines a file may have.
	MaxEnv = 128
)

// Service is one service file: how to start the service of a name.
// Exactly one of Exec and SystemdUnit is set.
type Service struct {
	// Name is the name the service takes, the file's name without
	// Suffix.
	Name string
	// Path is the file it was read from.
	Path string
	// Exec is the command: its program, an absolute path, and its
	// arguments.
	Exec []string
	// User is the user to run it as, a name or a numeric uid, as the file
	// has it; "" is busd's own user.
	User string
	// Env holds the file's env lines, KEY=VALUE, in order.
	Env []string
	// SystemdUnit is the unit systemd is asked to start instead.
	SystemdUnit string
}

// keys are the keys of a service file, and whether each may repeat.
var keys = map[string]bool{"name": false, "exec": false, "user": false, "env": true, "systemd_unit": false}

// ValidName reports why name cannot be a service's name, or nil: a name is
// a topic (tokens separated by dots, no wildcard tokens), at most
// MaxNameLen bytes, that does not start with '$' or '_' (the broker's and
// the bus's own prefixes).
func ValidName(name string) error {
	if err := topics.ValidTopic(name); err != nil {
		return err
	}
	switch {
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %q is longer than %d bytes", name, MaxNameLen)
	case name[0] == '$' || name[0] == '_':
		return fmt.Errorf("name %q starts with %q, which is reserved", name, name[:1])
	}
	return nil
}

// Parse reads the service file at path from r. The format (docs/ACTIVATION.md):
// one "key = value" a line, blanks around key and value ignored; empty
// lines and lines whose first non-blank character is '#' are comments.
// The keys are name (required; the file's name without Suffix), exec (the
// command, split by SplitCommand; its program an absolute path), user
// (optional), env (KEY=VALUE, repeatable) and systemd_unit (a unit whose
// name ends in .service, instead of exec; with neither user nor env).
// Any other key, a key given twice (but env), a line without '=', an
// empty value or a NUL byte is an error, a *FileError naming the line.
func Parse(path string, r io.Reader) (*Service, error) {
	s := &Service{Path: path}
	seen := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(r, MaxFileSize+1))
	sc.Buffer(make([]byte, 0, 4096), MaxFileSize+1)
	n, size := 0, 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > MaxFileSize+1 {
			return nil, &FileError{path, 0, fmt.Errorf("larger than %d bytes", MaxFileSize)}
		}
		if err := s.parseLine(sc.Text(), seen); err != nil {
			return nil, &FileError{path, n, err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("larger than %d bytes", MaxFileSize)
		}
		return nil, &FileError{path, 0, err}
	}
	if err := s.check(filepath.Base(path)); err != nil {
		return nil, &FileError{path, 0, err}
	}
	return s, nil
}

// parseLine takes one line of a file.
func (s *Service) parseLine(line string, seen map[string]bool) error {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return nil
	}
	if !utf8.ValidString(line) || strings.ContainsRune(line, 0) {
		return errors.New("not valid UTF-8 text, or has a NUL byte")
	}
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		return fmt.Errorf("%q is not key = value", line)
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	repeat, known := keys[k]
	switch {
	case !known:
		return fmt.Errorf("unknown key %q (the keys are name, exec, user, env and systemd_unit)", k)
	case seen[k] && !repeat:
		return fmt.Errorf("%s given twice", k)
	case v == "":
		return fmt.Errorf("%s has no value", k)
	}
	seen[k] = true
	switch k {
	case "name":
		s.Name = v
	case "exec":
		argv, err := SplitCommand(v)
		if err != nil {
			return fmt.Errorf("exec: %w", err)
		}
		if !filepath.IsAbs(argv[0]) {
			return fmt.Errorf("exec: the program %q is not an absolute path (busd looks nothing up in a PATH)", argv[0])
		}
		s.Exec = argv
	case "user":
		s.User = v
	case "env":
		return s.addEnv(v)
	case "systemd_unit":
		if err := validUnit(v); err != nil {
			return err
		}
		s.SystemdUnit = v
	}
	return nil
}

// addEnv takes an env line's KEY=VALUE.
func (s *Service) addEnv(kv string) error {
	key, _, ok := strings.Cut(kv, "=")
	switch {
	case !ok:
		return fmt.Errorf("env %q is not KEY=VALUE", kv)
	case !validEnvKey(key):
		return fmt.Errorf("env: %q is not a variable name (letters, digits and _, not starting with a digit)", key)
	case key == "BUSD_SOCKET" || key == "BUSD_SERVICE":
		return fmt.Errorf("env: %s is set by busd", key)
	case len(s.Env) == MaxEnv:
		return fmt.Errorf("env: more than %d variables", MaxEnv)
	}
	for _, e := range s.Env {
		if strings.HasPrefix(e, key+"=") {
			return fmt.Errorf("env: %s given twice", key)
		}
	}
	s.Env = append(s.Env, kv)
	return nil
}

// check checks the file as a whole, whose base name is base.
func (s *Service) check(base string) error {
	switch {
	case s.Name == "":
		return errors.New("no name = line")
	case base != s.Name+Suffix:
		return fmt.Errorf("name %q does not match the file's name: it would be %s", s.Name, s.Name+Suffix)
	case s.Exec == nil && s.SystemdUnit == "":
		return errors.New("neither exec nor systemd_unit: nothing to start")
	case s.Exec != nil && s.SystemdUnit != "":
		return errors.New("both exec and systemd_unit: give one")
	case s.SystemdUnit != "" && (s.User != "" || len(s.Env) > 0):
		return errors.New("user and env do not go with systemd_unit: the unit says them (User=, Environment=)")
	}
	if err := ValidName(s.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	return nil
}

func validEnvKey(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range []byte(k) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validUnit checks a systemd_unit value: a service unit's name, which
// cannot pass for an option of systemctl.
func validUnit(u string) error {
	stem, ok := strings.CutSuffix(u, ".service")
	if !ok || stem == "" || u[0] == '-' || len(u) > 255 {
		return fmt.Errorf("systemd_unit %q is not the name of a service unit (NAME.service)", u)
	}
	ok = !strings.ContainsFunc(stem, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || slices.Contains([]rune(":-_.\\@"), r))
	})
	if !ok {
		return fmt.Errorf("systemd_unit %q has a character a unit name may not have", u)
	}
	return nil
}

// SplitCommand splits an exec value into its words: words are separated
// by spaces and tabs; a double-quoted part of a word keeps its blanks,
// and in it \" is a quote and \\ a backslash. Nothing else is special: no
// variables, globs, or other shell syntax: $, *, ', and a backslash
// outside quotes are themselves. An unterminated quote is an error, and
// so is "" as a whole command.
func SplitCommand(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '"':
			inWord = true
			end := -1
			for j := i + 1; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					word.WriteByte(s[j+1])
					j++
					continue
				}
				if s[j] == '"' {
					end = j
					break
				}
				word.WriteByte(s[j])
			}
			if end < 0 {
				return nil, errors.New("a double quote is not closed")
			}
			i = end
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	if len(words) == 0 || words[0] == "" {
		return nil, errors.New("no program")
	}
	return words, nil
}
