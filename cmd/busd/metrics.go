package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/unixsock"
)

// The metrics endpoint (-metrics) serves bus.Server.Stats as OpenMetrics
// text with net/http. Anyone who can reach it learns how busy the bus is
// and how many users it serves, so it listens only where the machine's
// own users can reach it, no further: a Unix socket made as safely as the
// bus's own (unixsock.Listen: a directory only busd's user may write, the
// mode set before the socket is published), or a loopback address.

const (
	// metricsConns bounds the scrapes served at once: a scraper needs one,
	// and a client that opens many cannot make busd hold a descriptor and
	// a goroutine for each.
	metricsConns = 8
	// metricsTimeout bounds each step of a scrape (reading the request,
	// writing the answer) and how long an idle connection is kept.
	metricsTimeout = 10 * time.Second
)

// metricsAddr is a parsed -metrics value.
type metricsAddr struct{ network, addr string }

// parseMetricsAddr reads -metrics: a Unix socket path (it has a '/') or an
// IP loopback address and port. Host names are refused, since what they
// resolve to may change; so is every address that is not loopback.
func parseMetricsAddr(s string) (metricsAddr, error) {
	if strings.Contains(s, "/") {
		return metricsAddr{"unix", s}, nil
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return metricsAddr{}, fmt.Errorf("-metrics %q is neither a socket path (with a /, such as ./metrics.sock) nor a loopback IP address and port (127.0.0.1:9180, [::1]:9180)", s)
	}
	ap, err := netip.ParseAddrPort(s)
	switch {
	case host == "":
		return metricsAddr{}, fmt.Errorf("-metrics %q names no host, which would mean every address; give 127.0.0.1 or [::1]", s)
	case err != nil && isIP(host):
		return metricsAddr{}, fmt.Errorf("-metrics %q: the port is not a number from 0 to 65535", s)
	case err != nil:
		return metricsAddr{}, fmt.Errorf("-metrics %q: give a loopback IP address (127.0.0.1 or [::1]) and a port, not a host name", s)
	}
	if !ap.Addr().IsLoopback() {
		return metricsAddr{}, fmt.Errorf("-metrics %q: %v is not a loopback address; busd serves metrics only on 127.0.0.0/8, [::1] or a Unix socket, since they tell who uses the bus", s, ap.Addr())
	}
	return metricsAddr{"tcp", s}, nil
}

// checkMetricsPath refuses a metrics socket that clients would take for
// a bus: a NAME.sock beside the bus's socket (bus ls, clientlib's watch).
func checkMetricsPath(a metricsAddr, busSocket string) error {
	if a.network != "unix" || !strings.HasSuffix(a.addr, ".sock") {
		return nil
	}
	m, err1 := filepath.Abs(a.addr)
	b, err2 := filepath.Abs(busSocket)
	if err1 == nil && err2 == nil && filepath.Dir(m) == filepath.Dir(b) {
		return fmt.Errorf("-metrics %q: a .sock file in the bus directory would pass for a bus; give it another name or directory", a.addr)
	}
	return nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// metricsServer serves the endpoint until shutdown.
type metricsServer struct {
	http *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// startMetrics listens on a and serves srv's statistics there. A Unix
// socket is made with mode 0600, or 0660 for group gid if gid >= 0.
func startMetrics(a metricsAddr, srv *bus.Server, cfg bus.Config, gid int, log *slog.Logger) (*metricsServer, error) {
	var ln net.Listener
	if a.network == "unix" {
		opts := []unixsock.ListenOption{unixsock.WithMode(0o600)}
		if gid >= 0 {
			opts = append(opts, unixsock.WithMode(0o660), unixsock.WithGroup(gid))
		}
		l, err := unixsock.Listen(a.addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("-metrics: %w", err)
		}
		ln = l.NetListener()
	} else {
		l, err := net.Listen(a.network, a.addr)
		if err != nil {
			return nil, fmt.Errorf("-metrics: %w", err)
		}
		ln = l
	}
	fixed := fixedFamilies(cfg, float64(time.Now().UnixMilli())/1e3)
	mux := http.NewServeMux()
	// A GET pattern also serves HEAD; other methods get 405, other paths 404.
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		st := srv.Stats()
		var b bytes.Buffer
		writeOpenMetrics(&b, &st, fixed)
		w.Header().Set("Content-Type", openMetricsType)
		w.Write(b.Bytes())
	})
	m := &metricsServer{
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: metricsTimeout,
			ReadTimeout:       metricsTimeout,
			WriteTimeout:      metricsTimeout,
			IdleTimeout:       metricsTimeout,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   newLimitListener(ln, metricsConns),
		done: make(chan struct{}),
	}
	go func() {
		err := m.http.Serve(m.ln)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("the metrics endpoint stopped; the bus goes on", "err", err)
		}
		close(m.done)
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return m, nil
}

// shutdown stops serving within ctx: it closes the listener (removing a
// Unix socket), lets scrapes under way finish, and closes what is left
// when ctx ends.
func (m *metricsServer) shutdown(ctx context.Context, log *slog.Logger) {
	if m == nil {
		return
	}
	if err := m.http.Shutdown(ctx); err != nil {
		m.http.Close()
	}
	<-m.done
}

// limitListener accepts at most n connections at once. Unlike a plain
// semaphore it wakes on Close, so http.Server.Shutdown, which waits for
// Serve to return, never waits on a full listener.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back when first closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
