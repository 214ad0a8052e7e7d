// Package memfd carries large payloads between processes of the bus as
// sealed memfds: anonymous in-memory files that are filled once, sealed so
// that nobody can change them again, passed by descriptor, and mapped by
// each receiver, so the bytes are never copied through a socket.
//
// # Why seals
//
// A receiver maps a payload it got from another process and hands the
// bytes to code that trusts them. Two things must be impossible:
//
//   - the bytes changing under the receiver after it has looked at them,
//     because the sender, or anyone the descriptor was passed to, still
//     writes to the file;
//   - a SIGBUS, which kills the receiving process, because the file was
//     truncated under its mapping and a read touched a page past the new
//     end.
//
// F_SEAL_WRITE forbids write(2) and writable shared mappings, F_SEAL_SHRINK
// and F_SEAL_GROW forbid any change of size, and F_SEAL_SEAL forbids
// removing or adding seals; together they guarantee both, for every
// descriptor of the file in every process. [Open] therefore refuses, before
// mapping anything, a descriptor that is not a memfd, that lacks any of the
// four seals, or that is larger than the caller's limit, and a refusal is an
// error, never a crash.
//
// # Writing and sending
//
// [New] creates a memfd of a given size and maps it writable so the sender
// fills it in place ([Writer.Bytes]); [Writer.Seal] unmaps it, seals it and
// returns the file to send. [FromBytes] does all three for a caller that
// already has the payload in a slice. A sealed memfd can never be written
// again, so it cannot be reused for another payload.
//
// # Cost
//
// Every page of a new memfd is allocated and faulted in on first touch,
// by the writer and again (as a mapping) by each receiver, and a memfd
// has a fixed cost of a few system calls and unmaps. Measured here
// (figures in bench_test.go): a fresh 64 MiB memfd, filled, sealed,
// opened and read, takes 256 ms against 2.8 ms for a plain copy; with its
// pages touched beforehand 54 ms. Sealing forbids reuse, so a pool can
// only keep unwritten, pre-touched memfds; and below about 1 MiB the
// fixed cost outweighs the copies a memfd saves.
//
// # Ownership
//
// The package starts no goroutines.
//
//   - A [Writer] owns its memfd and its writable mapping until Seal, which
//     removes the mapping and hands the descriptor, as an [*os.File], to the
//     caller, who sends and closes it; or until [Writer.Close], which
//     discards both. A Writer is used by one goroutine at a time.
//   - [FromBytes] returns a file the caller owns.
//   - [Open] borrows the descriptor only while it checks and maps: the
//     caller still owns f and may close it at once. The returned [Mapping]
//     owns only the read-only mapping, released by [Mapping.Close], which
//     may be called from any goroutine, more than once. The slice from
//     [Mapping.Bytes] is valid until then and must never be written.
//
// Nothing is released by a finalizer: a slice of mapped memory does not keep
// its Mapping reachable, so a finalizer could unmap memory still in use. An
// unclosed Mapping or Writer leaks its mapping.
package memfd
