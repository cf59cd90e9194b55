// Package fetch polls each account's provider IMAP on a schedule and keeps
// every message in the store: fetched with BODY.PEEK[] (nothing is marked
// read upstream), stored durably with its folder's sync position before
// anything upstream is changed, and deleted upstream only keep_upstream
// after its local copy is safe.
//
// One connection per account: between scheduled polls it stays open in
// IDLE on INBOX when the server offers IDLE, so that a return is fetched as
// soon as it arrives. The scheduled polls go on regardless: go-imap beta.8
// can hold back an update that arrives just as IDLE starts.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Result sums up one poll.
type Result struct {
	Fetched    int `json:"fetched"`          // new messages stored
	Duplicates int `json:"duplicates"`       // already held (e.g. after a UIDVALIDITY change)
	Deleted    int `json:"deleted_upstream"` // deleted upstream after keep_upstream
}

// Poller polls one account.
type Poller struct {
	acct config.Account
	opt  config.Delivery // timeouts and backoff are shared with delivery
	st   Store
	log  *slog.Logger
	link *upstream.Tracker // the IMAP link's health; no scheduled poll before its Hold

	running  sync.Mutex         // one poll at a time
	notes    []string           // what this poll found worth telling
	conn     *imapclient.Client // kept between polls for IDLE; touched under running
	newMail  chan struct{}      // an EXISTS arrived while idling
	requests chan pollRequest   // the technician's `fetch`, while Run owns the connection
	looping  atomic.Bool
	serving  atomic.Bool // Run is answering a request
	mu       sync.Mutex
	health   store.FetchHealth // link's health, with what polling adds
}

// NewPoller returns a poller for an account with an imap upstream.
func NewPoller(acct config.Account, opt config.Delivery, st Store, log *slog.Logger) *Poller {
	h, _ := st.FetchHealth(acct.Name)
	h.Account = acct.Name
	if acct.Upstream.MaxFetchSize == 0 {
		acct.Upstream.MaxFetchSize = config.DefaultMaxFetchSize
	}
	p := &Poller{acct: acct, opt: opt, st: st, log: log.With("account", acct.Name, "imap", acct.Upstream.IMAP.String()), health: h,
		newMail: make(chan struct{}, 1), requests: make(chan pollRequest)}
	p.link = upstream.NewTracker(h.Health, opt, func(lh store.Health) {
		p.mu.Lock()
		p.health.Health = lh
		p.mu.Unlock()
	})
	return p
}

// smtpWorks reports whether the same provider's SMTP works now, as the
// delivery worker last recorded it in the store: a refused IMAP port is
// then access closed, not a network fault.
func (p *Poller) smtpWorks() bool {
	h, err := p.st.Health(p.acct.Name)
	return err == nil && h.FailingSince.IsZero() && !h.LastSuccess.IsZero()
}

type pollRequest struct {
	ctx   context.Context
	reply chan pollReply
}

type pollReply struct {
	res Result
	err error
}

// idleRestart is how often IDLE is ended and started again: DONE flushes an
// update go-imap held back, and a NAT or provider never sees a silent link.
const idleRestart = time.Minute

// Run polls on the account's schedule until ctx ends, idling in between
// when the server can; it also serves the technician's Poll requests.
func (p *Poller) Run(ctx context.Context) {
	p.looping.Store(true)
	defer p.looping.Store(false)
	defer p.closeConn()
	sched := p.acct.Upstream.Poll.Schedule
	p.scheduled(ctx) // a first poll at start
	next := sched.Next(time.Now())
	for ctx.Err() == nil {
		p.publishNext(next)
		wake := time.Until(next)
		var idle *imapclient.IdleCommand
		if p.conn != nil {
			var err error
			if idle, err = p.conn.Idle(); err != nil {
				p.closeConn()
			} else {
				wake = min(wake, idleRestart)
			}
		}
		t := time.NewTimer(max(wake, 0))
		var req *pollRequest
		newMail := false
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-p.newMail:
			newMail = true // acted on below, after DONE
		case r := <-p.requests:
			req = &r
		}
		t.Stop()
		if idle != nil {
			if idle.Close() != nil || idle.Wait() != nil {
				p.closeConn()
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case req != nil:
			p.serving.Store(true)
			res, err := p.PollNow(req.ctx)
			p.serving.Store(false)
			req.reply <- pollReply{res, err}
		case !time.Now().Before(next):
			p.scheduled(ctx)
			next = sched.Next(time.Now())
		default:
			select {
			case <-p.newMail: // announced while IDLE ended
				newMail = true
			default:
			}
			if newMail {
				p.scheduled(ctx) // new mail announced during IDLE
			} // else an IDLE restart with nothing new
		}
	}
}

func (p *Poller) closeConn() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// onUpdate is told of the server's unsolicited data: EXISTS means new mail.
func (p *Poller) onUpdate() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		if d.NumMessages != nil {
			select {
			case p.newMail <- struct{}{}:
			default:
			}
		}
	}}
}

// Health returns the account's polling health.
func (p *Poller) Health() store.FetchHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health
}

// publishNext records when the next poll really happens, and why then: the
// first scheduled time at or after the link's hold (a backoff, a pause),
// which is the time scheduled will not skip.
func (p *Poller) publishNext(next time.Time) time.Time {
	sched := p.acct.Upstream.Poll.Schedule
	hold := p.link.Hold()
	reason := "schedule (" + p.acct.Upstream.Poll.Spec + ")"
	if next.Before(hold) {
		// Run's own walk: each time it wakes it asks the schedule for the
		// time after now, and skips until the hold is over.
		for i := 0; next.Before(hold) && i < 1e5; i++ {
			next = sched.Next(next)
		}
		reason = p.link.Health().NextReason
	} else if h := p.link.Health(); !h.FailingSince.IsZero() && h.NextReason != "" {
		reason = h.NextReason + "; " + reason
	}
	p.mu.Lock()
	p.health.NextTry, p.health.NextReason = next, reason
	p.mu.Unlock()
	return next
}

// save records the polling health in the store, without waiting: it is
// advice for the technician.
func (p *Poller) save(f func(h *store.FetchHealth)) {
	p.mu.Lock()
	f(&p.health)
	h := p.health
	p.mu.Unlock()
	p.st.SetFetchHealthAsync(h) // advice: not waited for
}

// scheduled is a poll at its scheduled time: it skips while a failure's
// backoff or pause runs, or while another poll is under way.
func (p *Poller) scheduled(ctx context.Context) {
	if time.Now().Before(p.link.Hold()) || !p.running.TryLock() {
		return // in backoff, or the previous poll still runs: skip
	}
	defer p.running.Unlock()
	p.attempt(ctx) // logged and recorded there
}

// PollNow polls now, whatever the backoff (the technician's `fetch`), after
// the poll under way if there is one. While Run owns the connection, the
// request goes through it.
func (p *Poller) PollNow(ctx context.Context) (Result, error) {
	if p.looping.Load() && !p.inLoop() {
		r := pollRequest{ctx: ctx, reply: make(chan pollReply, 1)}
		select {
		case p.requests <- r:
			rep := <-r.reply
			return rep.res, rep.err
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	p.running.Lock()
	defer p.running.Unlock()
	return p.attempt(ctx)
}

// inLoop is true while Run itself calls Poll.
func (p *Poller) inLoop() bool { return p.serving.Load() }

func (p *Poller) attempt(ctx context.Context) (Result, error) {
	// A whole poll is bounded: go-imap's own timeouts are fixed, so a timer
	// closes the connection when the time is up.
	ctx, cancel := context.WithTimeout(ctx, 5*p.opt.Timeout.D())
	defer cancel()
	p.notes = nil
	res, err := p.collect(ctx)
	now := time.Now()
	if len(p.notes) > 0 {
		note := strings.Join(p.notes, "; ")
		p.save(func(h *store.FetchHealth) { h.Note, h.NoteAt = note, now })
	}
	if err != nil {
		pe, ok := err.(*upstream.Error)
		if !ok {
			// A store write or a message cut short: worded as it came, not
			// as a reply of the provider's (the zero Cause).
			pe = upstream.New(upstream.Temporary, "poll", err.Error(), sesam.CauseNetwork, err)
		}
		if ctx.Err() != nil {
			pe = upstream.New(upstream.Temporary, "poll", fmt.Sprintf("%s did not answer in time: the poll was stopped after %s", p.acct.Upstream.IMAP.Host, 5*p.opt.Timeout.D()), sesam.CauseTimeout, ctx.Err())
		}
		p.link.Failed(pe, now)
		next := p.link.Hold()
		if sched := p.acct.Upstream.Poll.Schedule; sched != nil {
			next = p.publishNext(sched.Next(time.Now()))
		}
		p.save(func(h *store.FetchHealth) {
			h.Blocked = pe.Kind == upstream.CredentialsRefused || pe.Kind == upstream.AccessClosed
		})
		p.log.Warn("imap poll failed; local mail is still served", "error", pe.Text, "kind", pe.Kind.String(), "next_poll", next.Format(time.RFC3339), "stored_before_failure", res.Fetched)
		return res, pe
	}
	p.link.Worked(now)
	p.save(func(h *store.FetchHealth) {
		h.Blocked = false
		h.FetchedTotal += int64(res.Fetched)
		h.LastFetched = res.Fetched
	})
	if res.Fetched+res.Deleted > 0 {
		p.log.Info("imap poll", "fetched", res.Fetched, "duplicates", res.Duplicates, "deleted_upstream", res.Deleted)
	}
	return res, nil
}

func (p *Poller) collect(ctx context.Context) (Result, error) {
	var res Result
	up := p.acct.Upstream
	c := p.conn
	if c == nil {
		var err error
		if c, err = dial(up, p.opt.Timeout.D(), p.smtpWorks(), p.onUpdate()); err != nil {
			return res, err
		}
	} else if c.Noop().Wait() != nil { // a kept connection may have died while idle
		p.closeConn()
		var err error
		if c, err = dial(up, p.opt.Timeout.D(), p.smtpWorks(), p.onUpdate()); err != nil {
			return res, err
		}
	}
	p.conn = nil
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	keep := false
	defer func() {
		if keep {
			p.conn = c
		} else {
			c.Close()
		}
	}()
	folders, missing := resolveSpecialUse(c, up.Folders)
	for _, folder := range folders {
		err := p.pollFolder(ctx, c, folder, &res)
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo && strings.HasPrefix(err.Error(), "select:") {
			missing = append(missing, folder) // a typo or another provider's name: the rest still counts
			continue
		}
		if err != nil {
			return res, err
		}
	}
	// Keep the connection for IDLE on INBOX when the server can idle, and
	// only while Run is there to use it.
	if p.looping.Load() && (c.Caps().Has(imap.CapIdle) || c.Caps().Has(imap.CapIMAP4rev2)) {
		if _, err := c.Select("INBOX", nil).Wait(); err == nil && stop() {
			keep = true
			drain(p.newMail) // what this poll fetched is no news
			if len(missing) > 0 {
				p.notes = append(p.notes, missingNote(missing))
			}
			return res, nil
		}
	}
	if len(missing) > 0 {
		p.log.Warn("imap folder missing upstream", "folders", missing)
		p.notes = append(p.notes, missingNote(missing))
	}
	c.Logout().Wait()
	return res, nil
}

// resolveSpecialUse turns a folder written as a RFC 6154 attribute
// (`\Junk`, what the presets ask for) into the folder the server marks
// with it, whatever its name in the provider's language. One the server
// does not mark is missing, like a folder that does not exist.
func resolveSpecialUse(c *imapclient.Client, folders []string) (out, missing []string) {
	var marked map[string]string // lower-case attribute → mailbox
	for _, f := range folders {
		if !strings.HasPrefix(f, `\`) {
			out = append(out, f)
			continue
		}
		if marked == nil {
			marked = map[string]string{}
			var opt *imap.ListOptions
			if caps := c.Caps(); caps.Has(imap.CapSpecialUse) || caps.Has(imap.CapListExtended) {
				opt = &imap.ListOptions{ReturnSpecialUse: true}
			}
			if list, err := c.List("", "*", opt).Collect(); err == nil {
				for _, m := range list {
					for _, a := range m.Attrs {
						if k := strings.ToLower(string(a)); marked[k] == "" {
							marked[k] = m.Mailbox
						}
					}
				}
			}
		}
		if name, ok := marked[strings.ToLower(f)]; ok {
			if !slices.Contains(folders, name) && !slices.Contains(out, name) {
				out = append(out, name)
			}
		} else {
			missing = append(missing, f+" (no folder marked so)")
		}
	}
	return out, missing
}

func missingNote(missing []string) string {
	return fmt.Sprintf("folder %s not found at the provider: check folders in [account.upstream] (providers name spam Spam, Junk, QUARANTAINE…)", strings.Join(missing, ", "))
}

func drain(c chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func (p *Poller) pollFolder(ctx context.Context, c *imapclient.Client, folder string, res *Result) error {
	host := p.acct.Upstream.IMAP.Host
	sel, err := c.Select(folder, nil).Wait()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return fmt.Errorf("select: %w", err)
		}
		return classify("SELECT "+folder, host, err, true)
	}
	uv, last, err := p.st.SyncState(p.acct.Name, folder)
	if err != nil {
		return err
	}
	if uv != sel.UIDValidity {
		if uv != 0 {
			note := fmt.Sprintf("the UIDVALIDITY of %s changed from %d to %d: the folder was read again, and the messages already held were recognised and skipped", folder, uv, sel.UIDValidity)
			p.log.Warn("imap folder renumbered by the provider", "folder", folder, "old_uidvalidity", uv, "new_uidvalidity", sel.UIDValidity)
			p.notes = append(p.notes, note)
		}
		if err := p.st.ResetSync(ctx, p.acct.Name, folder, sel.UIDValidity); err != nil {
			return err
		}
		uv, last = sel.UIDValidity, 0
	}
	if sel.NumMessages > 0 && (sel.UIDNext == 0 || uint32(sel.UIDNext) > last+1) {
		data, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(last + 1), Stop: 0}}}}, nil).Wait()
		if err != nil {
			return classify("UID SEARCH in "+folder, host, err, true)
		}
		var uids []imap.UID
		for _, u := range data.AllUIDs() {
			if uint32(u) > last { // "n:*" always matches the highest UID
				uids = append(uids, u)
			}
		}
		if err := p.fetchUIDs(ctx, c, folder, uv, uids, res); err != nil {
			return err
		}
	}
	return p.expire(ctx, c, folder, uv, res)
}

// expire deletes upstream what has been safe locally for keep_upstream.
func (p *Poller) expire(ctx context.Context, c *imapclient.Client, folder string, uv uint32, res *Result) error {
	keep := p.acct.Upstream.KeepUpstream
	if keep.Forever {
		return nil
	}
	uids, err := p.st.UpstreamExpired(p.acct.Name, folder, uv, time.Now().Add(-keep.For))
	if err != nil || len(uids) == 0 {
		return err
	}
	host := p.acct.Upstream.IMAP.Host
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return classify("STORE \\Deleted in "+folder, host, err, true)
	}
	if c.Caps().Has(imap.CapUIDPlus) {
		err = c.UIDExpunge(set).Close()
	} else {
		err = c.Expunge().Close()
	}
	if err != nil {
		return classify("EXPUNGE in "+folder, host, err, true)
	}
	res.Deleted += len(uids)
	return p.st.MarkUpstreamDeleted(ctx, p.acct.Name, folder, uv, uids)
}
