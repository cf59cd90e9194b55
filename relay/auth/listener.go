package auth

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Refusals are the lines written to a refused client before closing, so
// that one protocol's listener speaks its own language (SMTP, POP3).
type Refusals struct {
	NotAllowed func(ip string) string // outside the allowlist
	Blocked    func(ip string) string // too many failed logins
	Busy       func(why string) string
	OverBudget string // too much input before login, or the session lasted too long
}

// Policy is what a guarded listener enforces before the protocol server
// sees a connection, and on the connection until login.
type Policy struct {
	Allow    Allowlist
	Throttle *Throttle
	Conns    *ConnLimit // nil: no cap
	Budget   Budget
	// AllowName names the allowlist in the log; empty: "[listen] allow".
	AllowName string
}

// Guard wraps a listener: connections from outside the allowlist, from an
// address blocked by the throttle, or past the connection caps are
// answered with one line and closed before the protocol server ever sees
// them. The others are returned as *Conn, which enforces the budget. Leave
// refusals nil for a TLS listener, where plain text would mean nothing to
// the client.
func Guard(l net.Listener, p Policy, refusals *Refusals, log *slog.Logger) net.Listener {
	return &guard{Listener: l, p: p, ref: refusals, log: log}
}

type guard struct {
	net.Listener
	p   Policy
	ref *Refusals
	log *slog.Logger
}

func (g *guard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		remote := c.RemoteAddr().String()
		var line string
		switch {
		case !g.p.Allow.Allows(c.RemoteAddr()):
			name := g.p.AllowName
			if name == "" {
				name = "[listen] allow"
			}
			g.log.Warn("connection refused: address not in "+name, "remote", remote, "listener", g.Addr().String())
			if g.ref != nil {
				line = g.ref.NotAllowed(AddrOf(c.RemoteAddr()).String())
			}
		case g.p.Throttle != nil && g.p.Throttle.Blocked(c.RemoteAddr()):
			g.log.Warn("connection refused: too many failed logins", "remote", remote)
			if g.ref != nil {
				line = g.ref.Blocked(AddrOf(c.RemoteAddr()).String())
			}
		default:
			release, why := g.p.Conns.take(c.RemoteAddr())
			if why == "" {
				return newConn(c, g.p.Budget, g.ref, release, g.log), nil
			}
			g.log.Warn("connection refused: "+why, "remote", remote, "listener", g.Addr().String())
			if g.ref != nil {
				line = g.ref.Busy(why)
			}
		}
		go func() {
			if line != "" {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte(line + "\r\n"))
			}
			c.Close()
		}()
	}
}

// Unwrap returns the guarded connection beneath c (under TLS if need be),
// or nil.
func Unwrap(c net.Conn) *Conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	gc, _ := c.(*Conn)
	return gc
}

// Lift ends the pre-login budget on c: call it once a login succeeded.
func Lift(c net.Conn) {
	if gc := Unwrap(c); gc != nil {
		gc.lifted.Store(true)
	}
}

// CloseAfterReply closes c once its next reply has gone out (after a 421
// for too many failed logins), without racing the reply.
func CloseAfterReply(c net.Conn) {
	if gc := Unwrap(c); gc != nil {
		gc.CloseAfterNextWrite()
	}
}

// LogName is a login name as a client sent it, cut to 64 bytes for one
// log line (a client may send megabytes). The log's text handler quotes it
// when it holds spaces, quotes or control characters, so that a name can
// neither break the line nor pass for another field.
func LogName(s string) string {
	const max = 64
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "?") + "..."
	}
	return s
}
