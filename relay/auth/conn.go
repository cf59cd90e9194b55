package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Budget bounds what a client may send before it logs in, counted on the
// accepted connection itself, so that it holds beneath STARTTLS and
// implicit TLS too (the TLS handshake counts). go-smtp buffers a whole
// command line in memory before AUTH; without this a LAN host could make
// it hold a message-sized line per connection.
type Budget struct {
	Total   int           // bytes before login; 0: no budget
	Line    int           // bytes without a line feed before login; 0: no limit
	Login   time.Duration // from connect to login; 0: no limit
	Session time.Duration // whole connection, login or not; 0: no limit
}

// DefaultBudget leaves an honest client (EHLO, STARTTLS, AUTH: about 2 KB
// with the handshake, logged in within a second) far below the limits.
// The login deadline keeps silent connections from holding the caps' slots
// for the servers' idle timeouts (5 and 10 minutes).
var DefaultBudget = Budget{Total: 64 << 10, Line: 4 << 10, Login: time.Minute, Session: 30 * time.Minute}

// ErrOverBudget is what a read returns once the client sent too much
// before login.
var ErrOverBudget = errors.New("too much input before login")

// Conn is an accepted connection. It enforces the budget until Lift, holds
// a slot of the connection caps until closed, and can be asked to close
// right after its next reply.
type Conn struct {
	net.Conn
	budget  Budget
	refusal string // written in clear when over budget; "" under implicit TLS
	log     *slog.Logger
	lifted  atomic.Bool
	read    int // before login; only the reading goroutine touches these
	line    int
	over    bool

	mu         sync.Mutex
	closeAfter bool
	release    func()
	closeOnce  sync.Once
	timer      *time.Timer // the session's deadline
	login      *time.Timer // the login's deadline
}

func newConn(c net.Conn, b Budget, ref *Refusals, release func(), log *slog.Logger) *Conn {
	gc := &Conn{Conn: c, budget: b, release: release, log: log}
	if ref != nil {
		gc.refusal = ref.OverBudget
	}
	if b.Login > 0 {
		gc.login = time.AfterFunc(b.Login, func() {
			if !gc.lifted.Load() {
				log.Warn("connection closed: no login in time", "remote", c.RemoteAddr().String(), "limit", b.Login.String())
				gc.Close()
			}
		})
	}
	if b.Session > 0 {
		gc.timer = time.AfterFunc(b.Session, func() {
			log.Warn("connection closed: the session lasted too long", "remote", c.RemoteAddr().String(), "limit", b.Session.String())
			gc.Close()
		})
	}
	return gc
}

// Read counts bytes before login. Over budget it answers in clear when it
// can and reports end of input (the server then closes quietly), or, under
// implicit TLS, returns ErrOverBudget for the server to answer inside TLS
// (go-smtp: "421 4.4.0"; pop3d: -ERR [SYS/TEMP]). After STARTTLS/STLS the
// clear line means nothing to the client, which just sees the close.
func (c *Conn) Read(b []byte) (int, error) {
	if c.over {
		return 0, c.overErr()
	}
	n, err := c.Conn.Read(b)
	if c.lifted.Load() || c.budget.Total == 0 {
		return n, err
	}
	c.read += n
	longest := 0
	for _, x := range b[:n] {
		c.line++
		longest = max(longest, c.line)
		if x == '\n' {
			c.line = 0
		}
	}
	if c.read > c.budget.Total || (c.budget.Line > 0 && longest > c.budget.Line) {
		c.over = true
		c.log.Warn("connection closed: too much input before login", "remote", c.RemoteAddr().String(), "bytes", c.read, "budget", c.budget.Total, "line_limit", c.budget.Line)
		if c.refusal != "" {
			c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c.Conn, c.refusal+"\r\n")
		}
		return 0, c.overErr()
	}
	return n, err
}

func (c *Conn) overErr() error {
	if c.refusal != "" {
		return io.EOF
	}
	return ErrOverBudget
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
		c.Close()
	}
	return n, err
}

// Close closes the connection and gives back its slot.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		if c.login != nil {
			c.login.Stop()
		}
		if c.release != nil {
			c.release()
		}
	})
	return err
}

// ConnLimit caps open connections, in all and per address (IPv6 per /64).
// One ConnLimit is shared by every server of every config generation, so a
// reload neither resets nor doubles the counts.
type ConnLimit struct {
	mu      sync.Mutex
	max     int
	perAddr int
	total   int
	per     map[netip.Prefix]int
}

// NewConnLimit returns caps of max connections, perAddr from one address.
func NewConnLimit(max, perAddr int) *ConnLimit {
	return &ConnLimit{max: max, perAddr: perAddr, per: map[netip.Prefix]int{}}
}

// Set changes the caps (on reload); open connections stay open.
func (l *ConnLimit) Set(max, perAddr int) {
	l.mu.Lock()
	l.max, l.perAddr = max, perAddr
	l.mu.Unlock()
}

// take reserves a slot for a connection from addr, or says why not.
func (l *ConnLimit) take(addr net.Addr) (release func(), why string) {
	if l == nil {
		return nil, ""
	}
	a := Group(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return nil, fmt.Sprintf("too many connections (%d, [listen] max_connections)", l.total)
	}
	if l.per[a] >= l.perAddr {
		return nil, fmt.Sprintf("too many connections from %s (%d, [listen] max_connections_per_address)", a.Addr(), l.per[a])
	}
	l.total++
	l.per[a]++
	return func() {
		l.mu.Lock()
		l.total--
		if l.per[a]--; l.per[a] <= 0 {
			delete(l.per, a)
		}
		l.mu.Unlock()
	}, ""
}

// Open returns the number of connections holding a slot.
func (l *ConnLimit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
