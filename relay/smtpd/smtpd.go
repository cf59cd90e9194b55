// Package smtpd is the local SMTP submission server the billing software
// talks to. It answers 250 only once a mail is durable in the store, and
// 451 (try again) whenever the store fails, so a client never drops a lot
// because of us.
package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/internal/smtpwire"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Queue is what the submission server needs of the store.
type Queue interface {
	Submit(ctx context.Context, env store.Envelope, body []byte) (store.Accepted, error)
	FreeSpace() (uint64, error)
}

// Options configure a Server.
type Options struct {
	Hostname           string
	MaxMessageSize     int64
	MinFreeSpace       uint64
	AllowPlaintextAuth auth.Allowlist // networks that may log in without TLS
	TLS                *tls.Config    // nil: no STARTTLS
	Logins             *auth.Checker
	AccountOf          map[string]string // local login -> account
	Throttle           *auth.Throttle
	Allow              auth.Allowlist
	Conns              *auth.ConnLimit // shared with the other servers; nil: no cap
	Budget             auth.Budget     // before login; zero: auth.DefaultBudget
	Queue              Queue
	Log                *slog.Logger
	GuardClearLots     bool // hold mail to a fund whose care sheets are not encrypted
}

// Server serves submission on any number of listeners.
type Server struct {
	opt Options
	srv *smtp.Server

	mu    sync.Mutex
	conns map[*smtp.Conn]bool // open sessions, for Shutdown to end late ones
}

var (
	errTLSRequired  = &smtp.SMTPError{Code: 523, EnhancedCode: smtp.EnhancedCode{5, 7, 10}, Message: "TLS is required: use STARTTLS (or list this client's network in allow_plaintext_auth)"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required: log in with your sesam-relay account"}
	errStorage      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not store the mail; it was not accepted, try again later"}
	errDiskFull     = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage on the relay; try again later"}
	errBadLogin     = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication failed: wrong login or password"}
	errTooMany      = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed logins from your address; try again later"}
	errAuthBusy     = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again"}
)

// New returns a Server; call Serve for each listener.
func New(opt Options) *Server {
	if opt.Budget == (auth.Budget{}) {
		opt.Budget = auth.DefaultBudget
	}
	s := &Server{opt: opt, conns: map[*smtp.Conn]bool{}}
	srv := smtp.NewServer(s)
	srv.Domain = opt.Hostname
	srv.MaxMessageBytes = opt.MaxMessageSize
	// Old billing software writes very long lines (unwrapped base64): a line
	// may be as long as a whole message. Twice that, so that an oversized
	// one-line mail gets its 552 instead of a closed connection. Before
	// AUTH the connection's budget (auth.Budget) keeps lines short.
	srv.MaxLineLength = int(max(2*opt.MaxMessageSize, 64<<10))
	srv.MaxRecipients = 100
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	// go-smtp can only allow plaintext AUTH for everyone or no one; the
	// session checks the client's network (plaintextRefused).
	srv.AllowInsecureAuth = len(opt.AllowPlaintextAuth) > 0
	srv.TLSConfig = opt.TLS
	srv.ErrorLog = slogAdapter{opt.Log}
	s.srv = srv
	return s
}

// Refusals are the SMTP lines for connections the guard turns away.
var Refusals = &auth.Refusals{
	NotAllowed: func(ip string) string {
		return "554 5.7.1 " + ip + " is not allowed to use this relay (see [listen] allow)"
	},
	Blocked:    func(ip string) string { return "421 4.7.0 Too many failed logins from " + ip + "; try again later" },
	Busy:       func(why string) string { return "421 4.7.0 " + why + "; try again later" },
	OverBudget: "421 4.7.0 Too much input before login; closing",
}

func (s *Server) policy() auth.Policy {
	return auth.Policy{Allow: s.opt.Allow, Throttle: s.opt.Throttle, Conns: s.opt.Conns, Budget: s.opt.Budget}
}

// Serve serves plain SMTP (STARTTLS offered) on l until Close.
func (s *Server) Serve(l net.Listener) error {
	return s.srv.Serve(auth.Guard(l, s.policy(), Refusals, s.opt.Log))
}

// ServeTLS serves implicit-TLS SMTP on l until Close. Over budget, go-smtp
// answers "421 4.4.0" inside TLS.
func (s *Server) ServeTLS(l net.Listener) error {
	return s.srv.Serve(tls.NewListener(auth.Guard(l, s.policy(), nil, s.opt.Log), s.opt.TLS))
}

// Close stops every listener and connection. A mail not yet answered 250 is
// not in the queue; the client will send it again.
func (s *Server) Close() error { return s.srv.Close() }

// Shutdown stops the listeners and lets the sessions under way finish (a
// mail being submitted gets its 250) until ctx ends; then it closes the
// rest. A config reload uses it.
func (s *Server) Shutdown(ctx context.Context) {
	if s.srv.Shutdown(ctx) == nil {
		return
	}
	s.mu.Lock()
	var late []*smtp.Conn
	for c := range s.conns {
		late = append(late, c)
	}
	s.mu.Unlock()
	for _, c := range late {
		c.Close() // calls Logout, which takes s.mu
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
	return &session{s: s, conn: c, remote: c.Conn().RemoteAddr()}, nil
}

type session struct {
	s       *Server
	conn    *smtp.Conn
	remote  net.Addr
	account string
	from    string
	to      []string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if _, isTLS := ss.conn.TLSConnectionState(); !isTLS && !ss.s.opt.AllowPlaintextAuth.Allows(ss.remote) {
		return nil, errTLSRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return errBadLogin
			}
			return ss.login(user, pass)
		}), nil
	case sasl.Login:
		return newLoginServer(ss.login), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) login(user, pass string) error {
	log := ss.s.opt.Log.With("remote", ss.remote.String(), "login", auth.LogName(user))
	at, ok := ss.s.opt.Throttle.Begin(ss.remote, user)
	if !ok {
		log.Warn("smtp login refused unchecked: too many failed logins")
		ss.closeAfterReply()
		return errTooMany
	}
	good, err := ss.s.opt.Logins.Check(user, pass)
	if err != nil {
		at.Cancel()
		log.Warn("smtp login refused unchecked: " + err.Error())
		return errAuthBusy
	}
	if good {
		at.Succeed()
		auth.Lift(ss.conn.Conn())
		ss.account = user
		if a, ok := ss.s.opt.AccountOf[user]; ok {
			ss.account = a
		}
		log.Info("smtp login")
		return nil
	}
	wait, blocked := at.Fail()
	time.Sleep(wait)
	if blocked {
		log.Warn("smtp login failed; address blocked after too many failures")
		ss.closeAfterReply()
		return errTooMany
	}
	log.Warn("smtp login failed")
	return errBadLogin
}

// closeAfterReply closes the connection once the pending reply is written.
func (ss *session) closeAfterReply() { auth.CloseAfterReply(ss.conn.Conn()) }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.account == "" {
		return errAuthRequired
	}
	if free, err := ss.s.opt.Queue.FreeSpace(); err == nil && free < ss.s.opt.MinFreeSpace {
		ss.s.opt.Log.Error("disk almost full: refusing new mail with 452", "free_bytes", free, "min_free_space", ss.s.opt.MinFreeSpace)
		return errDiskFull
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.account == "" {
		return errAuthRequired
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	body, err := ss.read(r)
	if errors.Is(err, errLayout) {
		return errStorage
	}
	if errors.Is(err, smtpwire.ErrLineEnding) {
		ss.s.opt.Log.Warn("mail refused: a line ending another server could read as the end of the mail (SMTP smuggling?)", "remote", ss.remote.String(), "account", ss.account)
		return err
	}
	if err != nil {
		return err // 552 over the size limit, or the connection died
	}
	env := store.Envelope{Account: ss.account, From: ss.from, To: ss.to, Client: ss.remote.String()}
	h := sesam.ReadHeaders(body)
	env.Subject, env.MessageID = h.Subject, h.MessageID
	env.Hash = store.Fingerprint(body)      // the client's bytes: a resubmission carries a new Received line
	o := sesam.InspectOutbound(body, ss.to) // once, for the guard and the lot ledger
	env.Inspection = &o
	if ss.s.opt.GuardClearLots {
		if o.Clear {
			env.HoldReason = sesam.ClearHoldPrefix + o.ClearWhy + " — check the billing software's encryption (S/MIME) settings; release only if sending it this way is intended"
			ss.s.opt.Log.Warn("lot held: its care sheets are not encrypted", "account", ss.account, "to", ss.to, "message_id", env.MessageID)
		}
	}
	full := append(ss.received(), body...)
	a, err := ss.s.opt.Queue.Submit(context.Background(), env, full)
	if err != nil {
		ss.s.opt.Log.Error("could not store a mail: answered 451", "account", ss.account, "error", err.Error())
		return errStorage
	}
	if a.Resubmission {
		ss.s.opt.Log.Warn("resubmission of a mail already accepted (same Message-ID and bytes): answered 250, not queued again",
			"id", a.ID, "account", ss.account, "remote", ss.remote.String(), "message_id", env.MessageID)
		return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("OK: already queued as %d", a.ID)}
	}
	if a.SameMessageID != 0 {
		ss.s.opt.Log.Warn("Message-ID already used by another mail with different bytes: queued anyway, flagged",
			"id", a.ID, "earlier", a.SameMessageID, "account", ss.account, "message_id", env.MessageID)
	}
	if a.DuplicateOf != 0 {
		ss.s.opt.Log.Warn("probable second sending of a lot (same emitter and stamp, another Message-ID): answered 250, held so that the fund does not get a DOUBLON",
			"id", a.ID, "first", a.DuplicateOf, "account", ss.account, "message_id", env.MessageID)
	}
	ss.s.opt.Log.Info("mail queued", "id", a.ID, "account", ss.account, "from", ss.from, "to", ss.to, "size", len(full), "message_id", env.MessageID)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("OK: queued as %d", a.ID)}
}

var errLayout = errors.New("unknown DATA reader")

// read reads a message sent with DATA (through smtpwire, beneath go-smtp's
// dot handling) or with BDAT (go-smtp's pipe of the client's chunks, whose
// sizes it checks), refusing the same line endings either way.
func (ss *session) read(r io.Reader) ([]byte, error) {
	if src, ok := smtpwire.Raw(r); ok {
		body, err := smtpwire.ReadData(src.R, ss.s.opt.MaxMessageSize)
		src.Done()
		return body, err
	}
	if _, bdat := r.(*io.PipeReader); !bdat {
		// Only a go-smtp upgrade gets here, and smtpwire's test catches it first.
		ss.s.opt.Log.Error("cannot read DATA: go-smtp's reader is not the one this relay knows; answered 451", "error", smtpwire.ErrLayout.Error())
		return nil, errLayout
	}
	body, err := io.ReadAll(r) // go-smtp refuses chunks past max_message_size
	if err != nil {
		return nil, err
	}
	return body, smtpwire.CheckBody(body)
}

// received is the one header the relay adds (RFC 5321 section 4.4).
func (ss *session) received() []byte {
	proto := "ESMTPA"
	if _, ok := ss.conn.TLSConnectionState(); ok {
		proto = "ESMTPSA"
	}
	id := make([]byte, 6)
	rand.Read(id)
	host, _, _ := net.SplitHostPort(ss.remote.String())
	return fmt.Appendf(nil, "Received: from %s ([%s])\r\n\tby %s (sesam-relay) with %s id %s\r\n\t(authenticated as %s);\r\n\t%s\r\n",
		sanitize(ss.conn.Hostname()), host, ss.s.opt.Hostname, proto, hex.EncodeToString(id), ss.account, time.Now().Format(time.RFC1123Z))
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error {
	ss.s.mu.Lock()
	delete(ss.s.conns, ss.conn)
	ss.s.mu.Unlock()
	return nil
}

func sanitize(s string) string {
	out := []rune{}
	for _, r := range s {
		if r > ' ' && r < 127 && r != '(' && r != ')' {
			out = append(out, r)
		}
	}
	if len(out) > 64 {
		out = out[:64]
	}
	return string(out)
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.l.Debug("smtp", "detail", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Println(v ...any) { a.l.Debug("smtp", "detail", fmt.Sprint(v...)) }
