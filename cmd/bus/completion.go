package main

import (
	"context"
	"flag"
	"slices"
	"strings"
	"text/template"

	"github.com/busd/busd/internal/cli"
)

var shells = []string{"bash", "zsh", "fish"}

// completionScripts are the scripts `bus completion SHELL` prints, made
// from the command table so that they list what the usage lists. Each
// finds the command on the line by skipping flags and the values of those
// that take one, then offers the command's flags after a '-', and else
// the commands, or the words the command's first argument may be.
// Topics are left to the user: only a running bus knows them.
var completionScripts = map[string]*template.Template{
	"bash": template.Must(template.New("bash").Funcs(templateFuncs).Parse(bashScript)),
	"zsh":  template.Must(template.New("zsh").Funcs(templateFuncs).Parse(zshScript)),
	"fish": template.Must(template.New("fish").Funcs(templateFuncs).Parse(fishScript)),
}

var templateFuncs = template.FuncMap{
	"join":         strings.Join,
	"quote":        shellQuote,
	"flagNames":    func(fs []compFlag) string { return joinNames(fs, func(f compFlag) string { return f.Name }) },
	"commandNames": func(cs []compCommand) string { return joinNames(cs, func(c compCommand) string { return c.Name }) },
	// describe is a name and its description as zsh's _describe takes them.
	"describe": func(name, doc string) string { return name + ":" + doc },
	"fishFlag": fishFlag,
}

// shellQuote makes s one word, for bash, zsh and fish alike.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func joinNames[T any](items []T, name func(T) string) string {
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = name(it)
	}
	return strings.Join(names, " ")
}

// fishFlag is the options of fish's complete that describe f.
func fishFlag(f compFlag) string {
	s := "-o " + strings.TrimPrefix(f.Name, "-") + " -d " + shellQuote(f.Doc)
	switch {
	case f.Kind == "dir":
		s += " -x -a '(__fish_complete_directories)'"
	case f.Kind == "file":
		s += " -r -F"
	case f.Value:
		s += " -x"
	}
	return s
}

func completionFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
		if len(args) != 1 || completionScripts[args[0]] == nil {
			return cli.Usagef("usage: bus completion %s", strings.Join(shells, "|"))
		}
		return completionScripts[args[0]].Execute(e.stdout, newCompletion())
	}
}

// completion is what the scripts are made of.
type completion struct {
	Conn     []compFlag
	Commands []compCommand
	// ValueFlags take the next word as their value: a directory
	// (DirFlags), a file (FileFlags) or something else (OtherValueFlags).
	ValueFlags, DirFlags, FileFlags, OtherValueFlags []string
}

type compCommand struct {
	Name, Doc string
	Own       []compFlag // its own flags
	Flags     []compFlag // Own, then the connection flags
	Choices   []string
}

type compFlag struct {
	Name, Doc string // Name with its '-'
	Value     bool   // takes a value
	Kind      string // "dir", "file" or "" (nothing to offer)
}

// flagKinds says which flags take a directory or a file.
var flagKinds = map[string]string{"dir": "dir", "socket": "file", "attach": "file", "file": "file", "o": "dir"}

func newCompletion() *completion {
	conn := compFlags((&env{}).connFlags)
	comp := &completion{Conn: conn}
	for _, c := range commands {
		own := compFlags(func(fs *flag.FlagSet) { c.flags(fs) })
		comp.Commands = append(comp.Commands, compCommand{
			Name: c.name, Doc: summary(c.doc), Own: own, Flags: append(own[:len(own):len(own)], conn...), Choices: c.choices,
		})
		for _, f := range append(own, conn...) {
			if !f.Value || slices.Contains(comp.ValueFlags, f.Name) {
				continue
			}
			comp.ValueFlags = append(comp.ValueFlags, f.Name)
			switch f.Kind {
			case "dir":
				comp.DirFlags = append(comp.DirFlags, f.Name)
			case "file":
				comp.FileFlags = append(comp.FileFlags, f.Name)
			default:
				comp.OtherValueFlags = append(comp.OtherValueFlags, f.Name)
			}
		}
	}
	return comp
}

// compFlags lists the flags register adds to a flag set.
func compFlags(register func(*flag.FlagSet)) []compFlag {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	register(fs)
	var flags []compFlag
	fs.VisitAll(func(f *flag.Flag) {
		_, usage := flag.UnquoteUsage(f)
		boolFlag, _ := f.Value.(interface{ IsBoolFlag() bool })
		takesValue := boolFlag == nil || !boolFlag.IsBoolFlag()
		flags = append(flags, compFlag{Name: "-" + f.Name, Doc: summary(usage), Value: takesValue, Kind: flagKinds[f.Name]})
	})
	return flags
}

// summary is the start of a description, to fit beside a completion.
func summary(doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	for _, sep := range []string{"; ", " ("} {
		if i := strings.Index(doc, sep); i > 0 {
			doc = doc[:i]
		}
	}
	if r := []rune(doc); len(r) > 70 {
		doc = string(r[:69]) + "…"
	}
	return doc
}
