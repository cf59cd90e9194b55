// Package control is the technician's way into the running daemon: a Unix
// socket (mode 0660, the service's group) carrying one JSON request and one
// JSON reply per connection. The same Handler also answers read-only
// requests straight from the store when the daemon is down.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Request is one command.
type Request struct {
	Cmd     string   `json:"cmd"` // status, queue, show, retry, hold, release, drop, fetch, mail, mail-show, mail-restore, import, reload
	ID      int64    `json:"id,omitempty"`
	Account string   `json:"account,omitempty"`
	Login   string   `json:"login,omitempty"`
	All     bool     `json:"all,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Since   string   `json:"since,omitempty"`   // lots: YYYY-MM-DD
	Page    int      `json:"page,omitempty"`    // queue: 1 (the newest) when 0
	Files   [][]byte `json:"files,omitempty"`   // import: the raw messages
	Confirm bool     `json:"confirm,omitempty"` // release: yes, even an uncertain one or a probable duplicate
}

// Reply is the answer: Data on success, Error otherwise.
type Reply struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// BackupWarnAge is how old the last backup may be before status warns.
const BackupWarnAge = 48 * time.Hour

// Status is the reply to "status".
type Status struct {
	Running   bool      `json:"running"` // false: read from the store, daemon down
	Hostname  string    `json:"hostname"`
	StateDir  string    `json:"state_dir"`
	Started   time.Time `json:"started,omitzero"`
	FreeBytes uint64    `json:"free_bytes"`
	// LocalFault, when set, is why nothing is sent: the store could not
	// write (disk full, I/O error). Only the running daemon knows it.
	LocalFault *store.Fault `json:"local_fault,omitempty"`
	Listeners  []string     `json:"listeners,omitempty"` // absent when the daemon is down
	// Fingerprint is the SHA-256 of the listeners' certificate, which the
	// billing software may show on its first TLS connection.
	Fingerprint string `json:"certificate_sha256,omitempty"`
	TLSMin      string `json:"tls_min_version"` // of the local listeners
	// Weaknesses are the settings that lower the practice's protection
	// (config.Weaknesses): old TLS, logins without TLS, insecure upstreams,
	// and a store key kept in a plain file.
	Weaknesses []string `json:"weaknesses,omitempty"`
	// StoreKey says where the key the bodies are encrypted to was read
	// (only the running daemon knows).
	StoreKey string `json:"store_key,omitempty"`
	// LastBackup is the last good `sesam-relay backup`; absent: none yet.
	LastBackup *store.BackupRecord `json:"last_backup,omitempty"`
	Accounts   []AccountStatus     `json:"accounts"`
	Actions    []Action            `json:"technician_actions,omitempty"` // since the daemon started
}

// AccountStatus is one account's line in "status".
type AccountStatus struct {
	Name     string              `json:"name"`
	Address  string              `json:"address"`
	Upstream string              `json:"upstream"`
	Health   store.Health        `json:"health"`
	Counts   map[store.State]int `json:"counts"`
	IMAP     string              `json:"imap,omitempty"`
	Fetch    *store.FetchHealth  `json:"fetch,omitempty"`
	Mailbox  int                 `json:"mailbox"`            // messages held locally
	Warnings []store.Warning     `json:"warnings,omitempty"` // about lots, last 7 days
}

// MailShow is the reply to "mail-show".
type MailShow struct {
	Entry store.MailboxEntry `json:"entry"`
	Raw   []byte             `json:"raw,omitempty"` // only with All (the CLI's --raw)
}

// Imported is the reply to "import".
type Imported struct {
	Added      []int64 `json:"added"`
	Duplicates int     `json:"duplicates"`
}

// QueuePage is the reply to "queue": one page of the queue, newest pages
// first, and how many there are in all, so that no row is hidden.
type QueuePage struct {
	Total    int             `json:"total"`     // messages the listing selects
	Page     int             `json:"page"`      // 1: the newest
	Pages    int             `json:"pages"`     // pages in all
	PageSize int             `json:"page_size"` // messages per page
	Messages []store.Message `json:"messages"`  // oldest first within the page
}

// QueuePageSize is how many messages a page of `queue` holds.
const QueuePageSize = 500

func (h *Handler) queue(req Request) (QueuePage, error) {
	f := store.Filter{Account: req.Account, Limit: QueuePageSize}
	if !req.All {
		f.States = []store.State{store.Queued, store.Deferred, store.Sending, store.Held}
	}
	p := QueuePage{Page: max(req.Page, 1), PageSize: QueuePageSize}
	var err error
	if p.Total, err = h.Store.Count(f); err != nil {
		return p, err
	}
	p.Pages = max(1, (p.Total+QueuePageSize-1)/QueuePageSize)
	f.Offset = (p.Page - 1) * QueuePageSize
	p.Messages, err = h.Store.List(f)
	if p.Messages == nil {
		p.Messages = []store.Message{}
	}
	for i := range p.Messages {
		p.Messages[i] = waitingOnly(p.Messages[i])
	}
	return p, err
}

// waitingOnly leaves out a next attempt that will not happen: a mail sent,
// bounced, dropped or held has none.
func waitingOnly(m store.Message) store.Message {
	if m.State != store.Queued && m.State != store.Deferred {
		m.NextAttempt = time.Time{}
	}
	return m
}

// Show is the reply to "show": a message and its history.
type Show struct {
	Message store.Message `json:"message"`
	Events  []store.Event `json:"events"`
}

// Live is what only the running daemon knows.
type Live struct {
	Started     time.Time
	Listeners   []string
	Health      func(account string) (store.Health, bool)
	FetchHealth func(account string) (store.FetchHealth, bool)
	Fetch       func(ctx context.Context, account string) (any, error) // a poll now
	Reload      func(ctx context.Context) error                        // read the config again and apply it
	Actions     *Actions                                               // the last technician actions
	StoreKey    keys.Source                                            // where the store key was read
	Fingerprint string                                                 // of the listeners' TLS certificate
	Recent      func() []string                                        // the journal's last warnings, newest first
}

// Handler answers requests over a store.
type Handler struct {
	Store  Store
	Config *config.Config
	Live   *Live        // nil when the CLI reads the store with the daemon down
	Log    *slog.Logger // the journal, for technician actions; nil: none
}

// Handle runs one request from caller. A request that changes state or
// shows a mail's content leaves a line in the journal naming the caller.
func (h *Handler) Handle(ctx context.Context, req Request, caller Caller) (any, error) {
	data, err := h.handle(ctx, req, caller)
	var ids []int64
	if req.ID != 0 {
		ids = append(ids, req.ID)
	}
	if im, ok := data.(Imported); ok {
		ids = append(ids, im.Added...)
	}
	h.audit(req, caller, ids, err)
	return data, err
}

func (h *Handler) handle(ctx context.Context, req Request, caller Caller) (any, error) {
	who := caller.String()
	if req.Account != "" && h.Config.Account(req.Account) == nil {
		return nil, fmt.Errorf("no account %q in the config", req.Account)
	}
	switch req.Cmd {
	case "status":
		return h.status()
	case "reload":
		if h.Live == nil || h.Live.Reload == nil {
			return nil, ErrDaemonDown
		}
		return map[string]bool{"reloaded": true}, h.Live.Reload(ctx)
	case "queue":
		return h.queue(req)
	case "show":
		m, evs, err := h.Store.Get(req.ID)
		return Show{waitingOnly(m), evs}, err
	case "lots":
		return h.lots(req.Account, req.Since)
	case "mail":
		if h.Config.Account(req.Account) == nil {
			return nil, fmt.Errorf("no account %q in the config", req.Account)
		}
		return h.Store.Mailbox(req.Account)
	case "mail-show":
		e, err := h.Store.MailboxEntryByID(req.ID)
		if err != nil || !req.All {
			return MailShow{Entry: e}, err
		}
		raw, err := h.Store.MailboxBody(req.ID)
		return MailShow{Entry: e, Raw: raw}, err
	}
	if h.Live == nil {
		return nil, fmt.Errorf("%q needs the running daemon (start it: systemctl start sesam-relay)", req.Cmd)
	}
	switch req.Cmd {
	case "retry":
		return nil, h.Store.Retry(ctx, req.ID, who)
	case "hold":
		reason := req.Reason
		if reason == "" {
			reason = "held by the technician"
		}
		return nil, h.Store.Hold(ctx, req.ID, reason, who)
	case "release":
		m, _, err := h.Store.Get(req.ID)
		if err != nil {
			return nil, err
		}
		if m.Uncertain() && !req.Confirm {
			return nil, fmt.Errorf("message %d may already have reached the provider (%s): sending it again may give the fund this lot twice (DOUBLON). Check in the webmail's sent folder, or with the fund, that it did not arrive; then run `sesam-relay queue release %d --confirm`", req.ID, m.HoldReason, req.ID)
		}
		if m.Duplicate() && !req.Confirm {
			// Once the other sending was rejected, bounced or dropped, the
			// fund does not have the lot: no confirmation to ask.
			other, still, err := h.Store.StillDuplicate(req.ID)
			if err != nil {
				return nil, err
			}
			if still {
				return nil, fmt.Errorf("message %d is held as a probable second sending of a lot, and the fund may already have this lot (mail %d): sending it again would be refused as DOUBLON. Check with `sesam-relay lots show %d`, or with the fund, that the first did not reach it; then run `sesam-relay queue release %d --confirm`", req.ID, other, other, req.ID)
			}
		}
		return nil, h.Store.Release(ctx, req.ID, who)
	case "drop":
		return nil, h.Store.Drop(ctx, req.ID, who)
	case "fetch":
		return h.Live.Fetch(ctx, req.Account)
	case "account-retry":
		// After `account passwd`: the waiting mail leaves now, and the
		// returns are collected now, whatever pause the refused password
		// had put the account in.
		if h.Config.Account(req.Account) == nil {
			return nil, fmt.Errorf("no account %q in the config", req.Account)
		}
		n, err := h.Store.RetryAccount(ctx, req.Account, who)
		if err != nil {
			return nil, err
		}
		out := AccountRetry{Waiting: n}
		if h.Config.Account(req.Account).Upstream.IMAP.Addr != "" {
			if r, err := h.Live.Fetch(ctx, req.Account); err != nil {
				out.FetchError = err.Error()
			} else {
				out.Fetched = r
			}
		}
		return out, nil
	case "lots-rebuild":
		lots, matched, err := h.Store.RebuildLedger(ctx)
		return map[string]int{"lots": lots, "matched": matched}, err
	case "mail-restore":
		e, err := h.Store.MailboxEntryByID(req.ID)
		if err != nil {
			return nil, err
		}
		if a := h.Config.Login(req.Login); a == nil || a.Name != e.Account {
			return nil, fmt.Errorf("%q is not a login of account %s", req.Login, e.Account)
		}
		return nil, h.Store.Restore(ctx, req.Login, req.ID)
	case "import":
		if h.Config.Account(req.Account) == nil {
			return nil, fmt.Errorf("no account %q in the config", req.Account)
		}
		var out Imported
		for _, raw := range req.Files {
			r, err := h.Store.AddMail(ctx, req.Account, store.Origin{Kind: store.Imported}, raw, nil)
			if err != nil {
				return out, err
			}
			if r.Duplicate {
				out.Duplicates++
			} else {
				out.Added = append(out.Added, r.ID)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown command %q", req.Cmd)
}

// Status is what `sesam-relay status` shows (for /metrics and the page).
func (h *Handler) Status() (Status, error) { return h.status() }

func (h *Handler) status() (Status, error) {
	st := Status{Hostname: h.Config.Hostname, StateDir: h.Config.StateDir, TLSMin: h.Config.TLS.MinVersion.String(), Weaknesses: h.Config.Weaknesses()}
	st.FreeBytes, _ = h.Store.FreeSpace()
	b, ok, err := store.LastBackup(h.Config.StateDir)
	if ok {
		st.LastBackup = &b
	}
	if err != nil {
		st.Weaknesses = append(st.Weaknesses, fmt.Sprintf("the note of the last backup cannot be read (%v): whether there is a recent backup is unknown", err))
	} else if st.LastBackup == nil || time.Since(st.LastBackup.At) > BackupWarnAge {
		st.Weaknesses = append(st.Weaknesses, "no backup in the last 2 days: a dead SD card would take the queue, the mailboxes and the ledger with it (`sesam-relay backup`, see README, \"Backups\")")
	}
	if h.Live != nil {
		st.Running, st.Started, st.Listeners, st.Fingerprint = true, h.Live.Started, h.Live.Listeners, h.Live.Fingerprint
		st.Actions = h.Live.Actions.List()
		st.StoreKey = h.Live.StoreKey.String()
		if !h.Live.StoreKey.Credential {
			st.Weaknesses = append(st.Weaknesses, "the store key is a plain file ("+h.Live.StoreKey.Path+"): a copy of this disk opens every stored body; seal it with systemd-creds (see README, \"What is encrypted\")")
		}
		if f := h.Store.DeliveryFault(); !f.Since.IsZero() {
			st.LocalFault = &f
		}
	}
	counts, err := h.Store.Counts()
	if err != nil {
		return st, err
	}
	for _, a := range h.Config.Accounts {
		as := AccountStatus{Name: a.Name, Address: string(a.Address), Upstream: a.Upstream.SMTP.String(), Counts: counts[a.Name], IMAP: a.Upstream.IMAP.String()}
		if a.Upstream.IMAP.Addr != "" {
			fh, ok := store.FetchHealth{}, false
			if h.Live != nil && h.Live.FetchHealth != nil {
				fh, ok = h.Live.FetchHealth(a.Name)
			}
			if !ok {
				fh, _ = h.Store.FetchHealth(a.Name)
			}
			as.Fetch = &fh
		}
		as.Mailbox, _ = h.Store.MailboxCount(a.Name)
		ws, _ := h.Store.Warnings(a.Name, time.Now().Add(-7*24*time.Hour), 20)
		as.Warnings = current(ws)
		if as.Counts == nil {
			as.Counts = map[store.State]int{}
		}
		ok := false
		if h.Live != nil && h.Live.Health != nil {
			as.Health, ok = h.Live.Health(a.Name)
		}
		if !ok {
			as.Health, _ = h.Store.Health(a.Name)
		}
		st.Accounts = append(st.Accounts, as)
	}
	return st, nil
}

// Listen opens the control socket, replacing a stale one, with mode 0660.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating the control socket's folder: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use: is another sesam-relay running?", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("opening the control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve answers requests on l until it is closed. Each connection is
// answered by the handler current when it arrives (a reload swaps it).
func Serve(l net.Listener, current func() *Handler) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go serveConn(c, current())
	}
}

func serveConn(c net.Conn, h *Handler) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Minute)) // a fetch of a big mailbox takes a while
	var req Request
	line, err := bufio.NewReader(c).ReadBytes('\n')
	rep := Reply{}
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err == nil {
		var data any
		data, err = h.Handle(context.Background(), req, peer(c))
		if err == nil {
			rep.OK = true
			rep.Data, err = json.Marshal(data)
		}
	}
	if err != nil {
		rep.OK, rep.Error = false, err.Error()
	}
	b, _ := json.Marshal(rep)
	c.Write(append(b, '\n'))
}

// ErrDaemonDown means nothing answers on the control socket.
var ErrDaemonDown = errors.New("the daemon is not running")

// Call sends one request to the daemon and decodes its data into out.
func Call(path string, req Request, out any) error {
	c, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("no permission on %s: run as root or as a member of group sesam-relay", path)
		}
		if errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "connection refused") {
			return fmt.Errorf("%w (nothing listens on %s)", ErrDaemonDown, path)
		}
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Minute))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the daemon's reply: %w", err)
	}
	var rep Reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("the daemon's reply is not JSON: %w", err)
	}
	if !rep.OK {
		return errors.New(rep.Error)
	}
	if out != nil && len(rep.Data) > 0 {
		return json.Unmarshal(rep.Data, out)
	}
	return nil
}

// current leaves out an outage notice once its "works again" notice was
// given: status lists what stands, and the recovery line tells the rest.
func current(ws []store.Warning) []store.Warning {
	over := map[string]bool{}
	for _, w := range ws {
		if strings.HasPrefix(w.Kind, string(sesam.NoticeRecovered)) {
			over[string(sesam.NoticeOutage)+strings.TrimPrefix(w.Kind, string(sesam.NoticeRecovered))] = true
		}
	}
	out := ws[:0:0]
	for _, w := range ws {
		if !over[w.Kind] {
			out = append(out, w)
		}
	}
	return out
}

// AccountRetry is what `account passwd` set going again: the waiting
// mail made due now, and the returns collected now.
type AccountRetry struct {
	Waiting    int    `json:"waiting"`
	Fetched    any    `json:"fetched,omitempty"`
	FetchError string `json:"fetch_error,omitempty"`
}
