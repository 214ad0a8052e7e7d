package main

import (
	"flag"
	"io"
)

const usageHead = `usage: busd [flags]
       busd -check-config FILE
       busd -version

busd is the broker of a message bus for the processes of one machine. It
listens on DIR/NAME.sock, or on the sockets systemd passes it, until
SIGINT or SIGTERM; SIGHUP reads the -policy file and the -services
directory again.

flags (a duration takes a unit: 5s, 500ms, 2m):
`

const usageTail = `
environment:
  BUSD_SOCKET      the socket to listen on, unless -socket names one (it
                   wins over -dir and -name)
  BUSD_DIR         the socket directory, unless -dir names one
  XDG_RUNTIME_DIR  without $BUSD_DIR, the directory is $XDG_RUNTIME_DIR/busd
  LISTEN_FDS, LISTEN_PID
                   set by systemd socket activation: serve the sockets it
                   passes, whose mode and group systemd sets
  NOTIFY_SOCKET    set by systemd: busd tells it READY=1 and STOPPING=1

exit status:
  0  stopped by SIGINT or SIGTERM; or -h, -version, a valid -check-config
  1  failed: another busd serves the bus, a listener failed, the policy
     does not parse, and so on; stderr says why
  2  the command line cannot be run as written: stderr says what is wrong

-metrics ADDR answers GET /metrics with the broker's counters and gauges
as OpenMetrics text, on a Unix socket (made 0600, or 0660 for -group, in a
directory only busd's user may write) or a loopback port; it refuses any
other address, since the numbers tell who uses the bus. -log-format json
writes each log line as a JSON object. README.md, "Seeing what the bus
does", lists the metrics.

-services DIR starts the service of a name nobody owns when a request
comes for it, from the file DIR/NAME.service (off by default; a user's
bus would use ~/.config/busd/services); the request waits for it to take
the name, up to -activation-timeout. docs/ACTIVATION.md has the format.

docs/SECURITY.md says who may connect and what each limit bounds;
docs/SYSTEMD.md how to run busd as a systemd user service.
`

// writeUsage writes busd's usage, with the flags of fs.
func writeUsage(w io.Writer, fs *flag.FlagSet) {
	io.WriteString(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
	io.WriteString(w, usageTail)
}
