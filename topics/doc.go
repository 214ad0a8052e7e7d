// Package topics defines busd's topic grammar and the subscription index the
// broker routes with.
//
// A topic is a dot-separated list of tokens, such as "app.editor.opened".
// Tokens are non-empty, valid UTF-8, and contain no whitespace, control or
// format characters (Unicode White_Space, Cc and Cf). A pattern is a topic
// that may also use two wildcards, each only as a whole token: "*" matches
// exactly one token and ">" matches one or more trailing tokens, so it may
// only come last. Inside a longer token the characters '*' and '>' are
// ordinary ("a*b" is a literal token), which is what NATS does too.
//
// Topics and patterns are bounded: at most [MaxLen] bytes and [MaxDepth]
// tokens. Anything longer is an error reported without copying the input.
//
// [Index] maps patterns (optionally with a queue group) to subscriber values
// and answers which of them a published topic reaches. It is a token trie
// with a lock-free match cache; see [Index] for its guarantees.
//
// The package is pure: no I/O, no goroutines.
package topics
