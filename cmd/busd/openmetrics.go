package main

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/busd/busd/bus"
)

// The exposition is written by hand rather than with a Prometheus client
// library: it is some thirty integers read from one bus.Stats snapshot,
// which a table and a loop write in the OpenMetrics 1.0 text format
// (docs: https://prometheus.io/docs/specs/om/open_metrics_spec/), and the
// main module keeps only the dependencies it needs.

// openMetricsType is the Content-Type of the exposition.
const openMetricsType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// family is one metric family of the exposition.
type family struct {
	name string // the family's name; a counter's sample adds _total, an info's _info
	typ  string // counter, gauge or info
	unit string // if not "", also the name's suffix, as OpenMetrics requires
	help string
	// stat names the bus.Stats field the family reports. A family with
	// none reports fixed, a value that does not change while busd runs.
	stat  string
	fixed string
}

// statFamilies are the families read from bus.Stats, one for each of its
// fields (TestMetricsCoverStats keeps it so).
var statFamilies = []family{
	{name: "busd_connections", typ: "gauge", stat: "Conns", help: "Connections open now."},
	{name: "busd_subscriptions", typ: "gauge", stat: "Subs", help: "Subscriptions now."},
	{name: "busd_users", typ: "gauge", stat: "Users", help: "Uids with connections or holdings now."},
	{name: "busd_memory_held_bytes", typ: "gauge", unit: "bytes", stat: "Memory", help: "Bytes held for clients, as charged to the broker's memory budget."},
	{name: "busd_descriptors_held", typ: "gauge", stat: "FDs", help: "Descriptors held: two per connection, and passed ones."},
	{name: "busd_messages_published", typ: "counter", stat: "Published", help: "PUB frames routed."},
	{name: "busd_received_bytes", typ: "counter", unit: "bytes", stat: "BytesIn", help: "Bytes of the frames read from clients."},
	{name: "busd_sent_bytes", typ: "counter", unit: "bytes", stat: "BytesOut", help: "Bytes written to clients."},
	{name: "busd_descriptors_passed", typ: "counter", stat: "FDsPassed", help: "Descriptors received with PUBs."},
	{name: "busd_memfd_payloads", typ: "counter", stat: "FDPayloads", help: "PUBs whose payload was in a memfd, accepted."},
	{name: "busd_memfd_payloads_refused", typ: "counter", stat: "BadPayloads", help: "PUBs whose payload descriptor was refused (ERR bad payload)."},
	{name: "busd_memfd_payload_waits", typ: "counter", stat: "PayloadWaits", help: "Times a publisher waited for room in its uid's held-payload budget."},
	{name: "busd_memfd_payload_held_bytes", typ: "gauge", unit: "bytes", stat: "PayloadBytes", help: "Bytes of memfd payloads the broker holds descriptors of, charged to the uids that make it hold them."},
	{name: "busd_messages_delivered", typ: "counter", stat: "Delivered", help: "MSG frames queued for subscribers."},
	{name: "busd_messages_dropped", typ: "counter", stat: "Dropped", help: "Messages not queued because a subscriber's connection had no room."},
	{name: "busd_messages_lost", typ: "counter", stat: "Lost", help: "Dropped messages reported to their subscriptions in gap notices so far."},
	{name: "busd_gap_notices", typ: "counter", stat: "GapNotices", help: "Gap notices sent."},
	{name: "busd_publisher_stalls", typ: "counter", stat: "Stalls", help: "Times a publisher's reader waited for a receiver."},
	{name: "busd_receivers_lagging", typ: "counter", stat: "Lagging", help: "Times a receiver did not catch up within a publisher's stall budget."},
	{name: "busd_descriptor_waits", typ: "counter", stat: "FDWaits", help: "Times a read waited for room in its user's share of the broker's descriptors."},
	{name: "busd_slow_consumers", typ: "counter", stat: "SlowConsumers", help: "Connections closed as slow consumers."},
	{name: "busd_publishes_refused_broker_socket", typ: "counter", stat: "RefusedFDs", help: "PUBs refused for passing a socket connected to the broker."},
	{name: "busd_connections_refused", typ: "counter", stat: "RefusedConns", help: "Connections refused: not allowed, over a budget, the limit, or at shutdown."},
	{name: "busd_connections_not_allowed", typ: "counter", stat: "NotAllowed", help: "Connections refused because the allow-lists name neither their uid nor their groups."},
	{name: "busd_errors_sent", typ: "counter", stat: "Errors", help: "ERR frames sent to clients."},
	{name: "busd_sys_requests", typ: "counter", stat: "Requests", help: "Broker requests ($SYS.req.) answered."},
	{name: "busd_budget_hits", typ: "counter", stat: "BudgetHits", help: "Charges a budget refused."},
	{name: "busd_policy_denials", typ: "counter", stat: "Denied", help: "Actions the policy refused (ERR permission denied)."},
	{name: "busd_reply_permits_forgotten", typ: "counter", stat: "PermitsForgotten", help: "Requests no longer answerable because their receiver held its limit of reply permits."},
}

// fixedFamilies are the families whose values busd knows at start: its
// limits, its version and when it started.
func fixedFamilies(cfg bus.Config, start float64) []family {
	return []family{
		{name: "busd_connections_limit", typ: "gauge", fixed: strconv.Itoa(cfg.MaxConns), help: "Connections served at once (-max-conns)."},
		{name: "busd_memory_limit_bytes", typ: "gauge", unit: "bytes", fixed: strconv.FormatInt(cfg.MaxMemory, 10), help: "The broker's memory budget (-max-memory)."},
		{name: "busd_descriptors_limit", typ: "gauge", fixed: strconv.Itoa(cfg.MaxFDs), help: "The broker's descriptor budget, derived from RLIMIT_NOFILE."},
		{name: "busd_start_time_seconds", typ: "gauge", unit: "seconds", fixed: strconv.FormatFloat(start, 'f', 3, 64), help: "When busd started, in seconds since the Unix epoch."},
		{name: "busd_build", typ: "info", fixed: buildLabels() + " 1", help: "The module version, VCS revision and Go release busd was built from (busd -version)."},
	}
}

// buildLabels returns busd_build_info's labels, read from the build
// information as busd -version reads it.
func buildLabels() string {
	version, revision, goVersion := "(devel)", "", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return fmt.Sprintf(`{version="%s",revision="%s",goversion="%s"}`, escapeLabel(version), escapeLabel(revision), escapeLabel(goVersion))
}

// writeOpenMetrics writes st and fixed as an OpenMetrics exposition,
// ending with # EOF.
func writeOpenMetrics(b *bytes.Buffer, st *bus.Stats, fixed []family) {
	v := reflect.ValueOf(st).Elem()
	for _, f := range statFamilies {
		writeFamily(b, &f, statValue(v.FieldByName(f.stat)))
	}
	for _, f := range fixed {
		writeFamily(b, &f, f.fixed)
	}
	b.WriteString("# EOF\n")
}

func writeFamily(b *bytes.Buffer, f *family, value string) {
	fmt.Fprintf(b, "# TYPE %s %s\n", f.name, f.typ)
	if f.unit != "" {
		fmt.Fprintf(b, "# UNIT %s %s\n", f.name, f.unit)
	}
	fmt.Fprintf(b, "# HELP %s %s\n", f.name, escapeHelp(f.help))
	sample := f.name
	switch f.typ {
	case "counter":
		sample += "_total"
	case "info":
		sample += "_info"
	}
	b.WriteString(sample)
	if !strings.HasPrefix(value, "{") { // an info's value starts with its labels
		b.WriteByte(' ')
	}
	b.WriteString(value)
	b.WriteByte('\n')
}

// statValue formats a field of bus.Stats, all of which are integers.
func statValue(v reflect.Value) string {
	if v.CanInt() {
		return strconv.FormatInt(v.Int(), 10)
	}
	return strconv.FormatUint(v.Uint(), 10)
}

// escapeHelp and escapeLabel escape what OpenMetrics says they must.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
