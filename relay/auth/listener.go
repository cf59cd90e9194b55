package auth

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Refusals are the lines written to a refused client before closing, so
// that one protocol's listener speaks its own language (SMTP, POP3).
type Refusals struct {
	NotAllowed func(ip string) string // outside the allowlist
	Blocked    func(ip string) string // too many failed logins
}

// Guard wraps a listener: connections from outside the allowlist, or from
// an address blocked by the throttle, are answered with one line and closed
// before the protocol server ever sees them. Leave refusals nil for a TLS
// listener, where plain text would mean nothing to the client.
func Guard(l net.Listener, allow Allowlist, th *Throttle, refusals *Refusals, log *slog.Logger) net.Listener {
	return &guard{Listener: l, allow: allow, th: th, ref: refusals, log: log}
}

type guard struct {
	net.Listener
	allow Allowlist
	th    *Throttle
	ref   *Refusals
	log   *slog.Logger
}

func (g *guard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var line func(string) string
		switch {
		case !g.allow.Allows(c.RemoteAddr()):
			g.log.Warn("connection refused: address not in [listen] allow", "remote", c.RemoteAddr().String(), "listener", g.Addr().String())
			if g.ref != nil {
				line = g.ref.NotAllowed
			}
		case g.th != nil && g.th.Blocked(c.RemoteAddr()):
			g.log.Warn("connection refused: too many failed logins", "remote", c.RemoteAddr().String())
			if g.ref != nil {
				line = g.ref.Blocked
			}
		default:
			return &Conn{Conn: c}, nil
		}
		go func() {
			if line != nil {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte(line(AddrOf(c.RemoteAddr()).String()) + "\r\n"))
			}
			c.Close()
		}()
	}
}

// Conn is an accepted connection that a protocol server can ask to close
// right after its next reply (after a 421 for too many failed logins),
// without racing the reply.
type Conn struct {
	net.Conn
	mu         sync.Mutex
	closeAfter bool
}

// CloseAfterNextWrite closes the connection once the next write has gone out.
func (c *Conn) CloseAfterNextWrite() {
	c.mu.Lock()
	c.closeAfter = true
	c.mu.Unlock()
}

func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	closeNow := c.closeAfter
	c.mu.Unlock()
	if closeNow {
		c.Conn.Close()
	}
	return n, err
}
