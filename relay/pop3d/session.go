package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

const (
	maxLine    = 1024             // RFC 2449 allows 255 for commands; AUTH responses need more
	idle       = 10 * time.Minute // RFC 1939's minimum autologout timer
	maxErrors  = 20               // bad commands before we hang up
	stateAuth  = 0
	stateTrans = 1
)

type session struct {
	s      *Server
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	isTLS  bool
	state  int
	user   string // from USER
	login  string // once authenticated
	msgs   []store.ViewEntry
	dele   []bool
	errs   int
	retr   []int64 // retrieved this session, recorded in one write at the end
	closed bool
}

func newSession(s *Server, c net.Conn, isTLS bool) *session {
	return &session{s: s, conn: c, r: bufio.NewReaderSize(c, maxLine), w: bufio.NewWriter(c), isTLS: isTLS}
}

func (ss *session) reply(format string, a ...any) {
	fmt.Fprintf(ss.w, format+"\r\n", a...)
	ss.w.Flush()
}

func (ss *session) run() {
	defer func() {
		if ss.login != "" {
			// Before the unlock: the login's next session sees it. It is
			// information for `mail`, so a slow store only costs a log line.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := ss.s.opt.Store.MarkRetrieved(ctx, ss.login, ss.retr); err != nil {
				ss.log().Warn("pop3: recording which messages were retrieved failed", "retrieved", len(ss.retr), "error", err.Error())
			}
			cancel()
			ss.s.unlock(ss.login)
		}
		ss.conn.Close()
	}()
	ss.conn.SetDeadline(time.Now().Add(idle))
	ss.reply("+OK %s POP3 server (sesam-relay) ready", ss.s.opt.Hostname)
	for !ss.closed {
		ss.conn.SetDeadline(time.Now().Add(idle))
		line, err := ss.readLine()
		if errors.Is(err, errLineTooLong) {
			ss.bad("line too long")
			continue
		}
		if errors.Is(err, auth.ErrOverBudget) { // under TLS: answer there
			ss.reply(overBudget)
			return
		}
		if err != nil {
			if ss.login != "" {
				ss.log().Info("pop3 session dropped without QUIT: nothing deleted", "retrieved", len(ss.retr))
			}
			return
		}
		cmd, arg, _ := strings.Cut(line, " ")
		ss.dispatch(strings.ToUpper(cmd), arg)
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one CRLF (or LF) line of at most maxLine bytes; a longer
// one is read to its end and refused.
func (ss *session) readLine() (string, error) {
	line, err := ss.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = ss.r.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(line, "\r\n")), nil
}

func (ss *session) bad(msg string) {
	ss.errs++
	if ss.errs >= maxErrors {
		ss.reply("-ERR too many errors, closing")
		ss.closed = true
		return
	}
	ss.reply("-ERR %s", msg)
}

func (ss *session) log() *slog.Logger {
	return ss.s.opt.Log.With("remote", ss.conn.RemoteAddr().String(), "login", auth.LogName(ss.login))
}

func (ss *session) authAllowed() bool {
	return ss.isTLS || ss.s.opt.AllowPlaintextAuth.Allows(ss.conn.RemoteAddr())
}

func (ss *session) dispatch(cmd, arg string) {
	switch cmd {
	case "CAPA":
		ss.capa()
		return
	case "QUIT":
		ss.quit()
		return
	case "NOOP":
		if ss.state == stateTrans {
			ss.reply("+OK")
			return
		}
	}
	if ss.state == stateAuth {
		switch cmd {
		case "USER":
			if !ss.authAllowed() {
				ss.bad("[AUTH] plaintext login is disabled: use STLS first")
				return
			}
			if arg == "" {
				ss.bad("USER needs a name")
				return
			}
			ss.user = arg
			ss.reply("+OK send PASS")
		case "PASS":
			if ss.user == "" {
				ss.bad("USER first")
				return
			}
			user := ss.user
			ss.user = ""
			ss.authenticate(user, arg)
		case "AUTH":
			ss.authCmd(arg)
		case "STLS":
			ss.stls()
		case "APOP":
			ss.bad("APOP is not supported: use USER/PASS or AUTH PLAIN")
		default:
			ss.bad("unknown command or not allowed before login")
		}
		return
	}
	switch cmd {
	case "STAT":
		n, size := 0, int64(0)
		for i, m := range ss.msgs {
			if !ss.dele[i] {
				n++
				size += m.WireSize
			}
		}
		ss.reply("+OK %d %d", n, size)
	case "LIST", "UIDL":
		ss.listing(cmd, arg)
	case "RETR":
		if i, ok := ss.msgArg(arg); ok {
			ss.send(i, -1)
		}
	case "TOP":
		nArg, lines, _ := strings.Cut(arg, " ")
		n, err := strconv.Atoi(lines)
		if err != nil || n < 0 {
			ss.bad("TOP needs a message number and a line count")
			return
		}
		if i, ok := ss.msgArg(nArg); ok {
			ss.send(i, n)
		}
	case "DELE":
		if i, ok := ss.msgArg(arg); ok {
			ss.dele[i] = true
			ss.reply("+OK message %d deleted", i+1)
		}
	case "RSET":
		for i := range ss.dele {
			ss.dele[i] = false
		}
		ss.reply("+OK maildrop has %d messages", len(ss.msgs))
	default:
		ss.bad("unknown command or not allowed now")
	}
}

func (ss *session) capa() {
	lines := []string{"+OK capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	if ss.state == stateAuth {
		if ss.authAllowed() {
			lines = append(lines, "USER", "SASL PLAIN")
		}
		if ss.s.opt.TLS != nil && !ss.isTLS {
			lines = append(lines, "STLS")
		}
	}
	lines = append(lines, "IMPLEMENTATION sesam-relay", ".")
	ss.reply("%s", strings.Join(lines, "\r\n"))
}

// msgArg parses a message number that exists and is not deleted.
func (ss *session) msgArg(arg string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(arg))
	if err != nil || n < 1 || n > len(ss.msgs) || ss.dele[n-1] {
		ss.bad("no such message")
		return 0, false
	}
	return n - 1, true
}

func (ss *session) listing(cmd, arg string) {
	field := func(i int) string {
		if cmd == "UIDL" {
			return ss.msgs[i].UIDL
		}
		return strconv.FormatInt(ss.msgs[i].WireSize, 10)
	}
	if strings.TrimSpace(arg) != "" {
		if i, ok := ss.msgArg(arg); ok {
			ss.reply("+OK %d %s", i+1, field(i))
		}
		return
	}
	fmt.Fprintf(ss.w, "+OK\r\n")
	for i := range ss.msgs {
		if !ss.dele[i] {
			fmt.Fprintf(ss.w, "%d %s\r\n", i+1, field(i))
		}
	}
	ss.reply(".")
}

func (ss *session) send(i int, topLines int) {
	body, err := ss.s.opt.Store.MailboxBody(ss.msgs[i].ID)
	if err != nil {
		ss.log().Warn("pop3: reading a stored message failed", "id", ss.msgs[i].ID, "error", err.Error())
		ss.reply("-ERR [SYS/TEMP] cannot read message %d now; try again", i+1)
		return
	}
	if topLines < 0 {
		fmt.Fprintf(ss.w, "+OK %d octets\r\n", ss.msgs[i].WireSize)
	} else {
		fmt.Fprintf(ss.w, "+OK top of message follows\r\n")
	}
	if err := writeMessage(ss.w, body, topLines); err != nil {
		ss.closed = true
		return
	}
	if topLines < 0 {
		ss.retr = append(ss.retr, ss.msgs[i].ID)
	}
}

func (ss *session) quit() {
	ss.closed = true
	if ss.state != stateTrans {
		ss.reply("+OK bye")
		return
	}
	var ids []int64
	for i, d := range ss.dele {
		if d {
			ids = append(ids, ss.msgs[i].ID)
		}
	}
	if len(ids) > 0 {
		if err := ss.s.opt.Store.DeleteFromView(context.Background(), ss.login, ids); err != nil {
			ss.log().Warn("pop3: recording deletions failed; nothing deleted", "error", err.Error())
			ss.reply("-ERR [SYS/TEMP] could not record the deletions; nothing was deleted")
			return
		}
	}
	ss.log().Info("pop3 session done", "retrieved", len(ss.retr), "deleted", len(ids))
	ss.reply("+OK sesam-relay signing off (%d messages deleted)", len(ids))
}

func (ss *session) authCmd(arg string) {
	mech, ir, _ := strings.Cut(strings.TrimSpace(arg), " ")
	if mech == "" {
		ss.reply("+OK\r\nPLAIN\r\n.")
		return
	}
	if !strings.EqualFold(mech, "PLAIN") {
		ss.bad("unsupported mechanism (PLAIN only)")
		return
	}
	if !ss.authAllowed() {
		ss.bad("[AUTH] plaintext login is disabled: use STLS first")
		return
	}
	if ir == "" {
		ss.reply("+ ")
		line, err := ss.readLine()
		if err != nil {
			ss.closed = true
			return
		}
		ir = line
	}
	if ir == "*" {
		ss.bad("AUTH cancelled")
		return
	}
	if ir == "=" {
		ir = ""
	}
	dec, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(dec), "\x00")
	if err != nil || len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		ss.bad("malformed AUTH PLAIN response")
		return
	}
	ss.authenticate(parts[1], parts[2])
}

func (ss *session) authenticate(user, pass string) {
	remote := ss.conn.RemoteAddr()
	log := ss.s.opt.Log.With("remote", remote.String(), "login", auth.LogName(user))
	at, ok := ss.s.opt.Throttle.Begin(remote, user)
	if !ok {
		log.Warn("pop3 login refused unchecked: too many failed logins")
		ss.reply("-ERR [AUTH] too many failed logins; try again later")
		ss.closed = true
		return
	}
	account, known := ss.s.opt.AccountOf[user]
	good, err := ss.s.opt.Logins.Check(user, pass)
	if err != nil {
		at.Cancel()
		log.Warn("pop3 login refused unchecked: " + err.Error())
		ss.reply("-ERR [SYS/TEMP] too many logins at once; try again")
		return
	}
	if !good || !known {
		wait, blocked := at.Fail()
		time.Sleep(wait)
		log.Warn("pop3 login failed")
		if blocked {
			ss.reply("-ERR [AUTH] too many failed logins; try again later")
			ss.closed = true
			return
		}
		ss.bad("[AUTH] wrong login or password")
		return
	}
	at.Succeed()
	if !ss.s.lock(user) {
		ss.bad("[IN-USE] another session of " + user + " is open; try again when it ends")
		return
	}
	msgs, err := ss.s.opt.Store.View(user, account)
	if err != nil {
		ss.s.unlock(user)
		ss.reply("-ERR [SYS/TEMP] cannot open the maildrop now; try again")
		return
	}
	ss.login, ss.msgs, ss.dele, ss.state = user, msgs, make([]bool, len(msgs)), stateTrans
	auth.Lift(ss.conn)
	var size int64
	for _, m := range msgs {
		size += m.WireSize
	}
	ss.log().Info("pop3 login", "messages", len(msgs))
	ss.reply("+OK %s has %d messages (%d octets)", user, len(msgs), size)
}

func (ss *session) stls() {
	if ss.s.opt.TLS == nil || ss.isTLS {
		ss.bad("STLS not available now")
		return
	}
	ss.reply("+OK begin TLS negotiation")
	tc := tls.Server(ss.conn, ss.s.opt.TLS)
	tc.SetDeadline(time.Now().Add(time.Minute))
	if err := tc.Handshake(); err != nil {
		ss.closed = true
		return
	}
	// Anything the client sent after STLS in clear is dropped with the old
	// reader: it could be a command injected before the handshake.
	ss.conn, ss.r, ss.w, ss.isTLS = tc, bufio.NewReaderSize(tc, maxLine), bufio.NewWriter(tc), true
}
