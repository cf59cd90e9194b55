// Package store owns everything under state_dir: the outbound queue, the
// local mailboxes, upstream health, and the durable writes behind them.
//
// It is the only package that opens files there. The index is SQLite in WAL
// mode with synchronous=FULL, so a committed transaction survives a crash or
// a power cut, and the CLI can read while the daemon writes. Writes go
// through one committer goroutine that batches concurrent callers into one
// transaction (group commit): ten clients submitting at once cost one fsync,
// not ten.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the pure Go "sqlite" driver

	"github.com/sesam-relay/sesam-relay/sesam"
)

// dbFile is the index's name inside state_dir.
const dbFile = "sesam-relay.db"

// maxBatch bounds one group commit so that one huge burst cannot starve its first writer.
const maxBatch = 256

// Store is an open state folder.
type Store struct {
	dir       string
	w         *sql.DB // the single writer connection, used only by the committer
	r         *sql.DB // readers
	reqs      chan *writeReq
	closeMu   sync.RWMutex // held to send on reqs; Close takes it to close reqs
	closed    bool
	done      chan struct{}
	readOnly  bool
	now       func() time.Time
	commits   atomic.Int64 // transactions committed, to prove group commit in tests
	wake      wakers       // see wake.go
	kick      wakers
	ledger    wakers
	tmp       string                       // a copy read by OpenReadOnly, removed at Close
	keys      *Keys                        // nil: bodies are written in clear (tests; before init)
	lookupKey []byte                       // nil: lots are looked up by their values (see text.go)
	rules     atomic.Pointer[[]sesam.Rule] // classification rules from the config (Configure); a reload swaps them
	fault     faultState                   // a local write failure that pauses all delivery
	minFree   atomic.Uint64                // min_free_space; see Configure
	window    atomic.Int64                 // how far back a resubmission is recognised (ns); see Configure

	rebuilding   sync.Mutex           // one ledger rebuild at a time: they share the rebuild tables
	rebuildBatch int                  // tests: mails per rebuild write (0: rebuildBatch)
	rebuildHook  func(step int) error // tests: called after each rebuild write; an error stops the rebuild there
}

// A write request's life: queued until the committer takes it, or until
// its waiter withdraws it because its ctx ended first. Whoever moves it out
// of queued first (CompareAndSwap) decides: a taken request runs and its
// waiter gets its real outcome; a withdrawn one never runs.
const (
	reqQueued int32 = iota
	reqTaken
	reqWithdrawn
)

type writeReq struct {
	fn    func(*sql.Tx) error
	after func(error) // run by the committer once the outcome is known, before done closes
	state atomic.Int32
	err   error         // the outcome, set before done closes
	done  chan struct{} // closed once the outcome is known
}

// Pending is a write asked for without waiting. Only writes that are
// advice (a "sent" record the next waited write makes durable, health,
// a fetched message the poller waits for with its batch) take this form;
// every other write waits. Its outcome obeys the same rule as writeWait:
// nil means durable, an error means nothing was written.
type Pending struct{ req *writeReq }

// Wait returns the write's outcome. If ctx ends while the write still
// waits in the queue, it is withdrawn (it will never commit) and Wait
// returns ctx.Err(); once the committer has taken it, Wait returns its
// real outcome, however long that takes. Writes sent one after the other
// may then be withdrawn for some and committed for later ones: a pipeline
// whose writes depend on their order waits with a ctx that does not end.
func (p *Pending) Wait(ctx context.Context) error {
	r := p.req
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return ctx.Err()
		}
		<-r.done
		return r.err
	}
}

// Done reports the write's outcome without waiting: ok is false while it
// is still queued or being committed.
func (p *Pending) Done() (err error, ok bool) {
	select {
	case <-p.req.done:
		return p.req.err, true
	default:
		return nil, false
	}
}

func (r *writeReq) finish(err error) {
	r.err = err
	if r.after != nil {
		r.after(err)
	}
	close(r.done)
}

// ErrNotFound is returned for an id the store does not hold.
var ErrNotFound = errors.New("no such message")

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// What a write frees (a body sealed in place, a purge) is zeroed,
		// not left readable in free pages.
		q.Add("_pragma", "secure_delete(1)")
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the state folder for the daemon.
func Open(dir string) (*Store, error) { return OpenSealed(dir, nil) }

// OpenSealed is Open with the appliance's keys: every body written is
// sealed to keys.Write (see seal), and Reseal seals the bodies an older
// version left in clear. With nil keys, bodies are written in clear (tests,
// tools); a store that holds sealed bodies then refuses to open, as it
// does when a key that sealed some is not in keys.Read: nothing is touched.
func OpenSealed(dir string, keys *Keys) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating state_dir: %w", err)
	}
	path := filepath.Join(dir, dbFile)
	if err := private(path); err != nil {
		return nil, fmt.Errorf("creating the queue in %s: %w", dir, err)
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if err := migrate(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("opening the queue in %s: %w", dir, err)
	}
	// The database and its WAL now exist: sync the folder once so that their
	// directory entries survive a power cut too.
	if err := syncDir(dir); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	if err := keysFit(r, keys, dir); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s := &Store{dir: dir, w: w, r: r, reqs: make(chan *writeReq, 1024), done: make(chan struct{}), now: time.Now, keys: keys}
	if err := s.loadLookupKey(w, true); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("opening the queue in %s: %w", dir, err)
	}
	go s.committer()
	return s, nil
}

// fileMode is the most any file of the store may allow: the service user
// writes, its group (technicians) reads, nobody else.
const fileMode = 0o640

// private makes the index exist with fileMode or stricter, whatever the
// umask, before SQLite opens it: SQLite gives its -wal and -shm files the
// index's mode. Files left more open by an older version are tightened.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&^fileMode != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&fileMode); err != nil {
				return err
			}
		}
	}
	return nil
}

// OpenReadOnlySealed is OpenReadOnly with the keys that open the bodies.
func OpenReadOnlySealed(dir string, keys *Keys) (*Store, error) {
	s, err := OpenReadOnly(dir)
	if err != nil {
		return nil, err
	}
	s.keys = keys
	if err := s.loadLookupKey(s.r, false); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens the state folder for reading only: the CLI uses it when
// the daemon is down. It never creates anything in the folder; a sealed
// body reads as ErrSealed.
func OpenReadOnly(dir string) (*Store, error) {
	path := filepath.Join(dir, dbFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no queue in %s: %w", dir, err)
	}
	r, err := ping(dsn(path, true))
	if err == nil {
		return &Store{dir: dir, r: r, readOnly: true, now: time.Now}, nil
	}
	// A technician in group sesam-relay may read the files but not create
	// SQLite's shared-memory file beside them. The daemon is down: after a
	// clean stop there is no write-ahead log, and the file alone is the
	// whole store; after a crash, read a copy of the file and its log.
	if wal, werr := os.Stat(path + "-wal"); werr != nil || wal.Size() == 0 {
		if r, err2 := ping(dsn(path, true) + "&immutable=1"); err2 == nil {
			return &Store{dir: dir, r: r, readOnly: true, now: time.Now}, nil
		}
	} else if tmp, err2 := copyForReading(path); err2 == nil {
		if r, err2 := ping(dsn(filepath.Join(tmp, dbFile), false)); err2 == nil {
			return &Store{dir: dir, r: r, readOnly: true, now: time.Now, tmp: tmp}, nil
		}
		os.RemoveAll(tmp)
	}
	return nil, fmt.Errorf("opening the queue in %s read-only: %w", dir, err)
}

func ping(dsn string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// copyForReading copies the database and its write-ahead log into a new
// temporary folder, where SQLite may replay the log.
func copyForReading(path string) (string, error) {
	tmp, err := os.MkdirTemp("", "sesam-relay-read-")
	if err != nil {
		return "", err
	}
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(path+suffix, filepath.Join(tmp, dbFile+suffix)); err != nil {
			os.RemoveAll(tmp)
			return "", err
		}
	}
	return tmp, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Close stops the committer after the writes already asked for, and closes the files.
func (s *Store) Close() error {
	if !s.readOnly {
		s.closeMu.Lock()
		s.closed = true
		close(s.reqs)
		s.closeMu.Unlock()
		<-s.done
		s.w.Close()
	}
	err := s.r.Close()
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
	return err
}

// Dir is the state folder, for messages to the technician.
func (s *Store) Dir() string { return s.dir }

// Settings are what the store takes from the config; the daemon sets them
// at start and at each reload, before mail arrives.
type Settings struct {
	// Rules are the classification rules tried before sesam's defaults
	// (the config's [[sesam.rule]]).
	Rules []sesam.Rule
	// ResubmitWindow is how far back a resubmission is recognised: the
	// delivery lifetime, after which a mail can no longer be on its way
	// (0: defaultResubmitWindow).
	ResubmitWindow time.Duration
	// MinFreeSpace is min_free_space: below it new mail is refused
	// (smtpd), and fetching keeps twice it free so that lots still find room.
	MinFreeSpace uint64
}

// Configure applies the config's settings.
func (s *Store) Configure(c Settings) {
	s.rules.Store(&c.Rules)
	s.window.Store(int64(c.ResubmitWindow))
	s.minFree.Store(c.MinFreeSpace)
}

// RoomToFetch reports whether n more bytes of fetched mail would still
// leave twice min_free_space free, how much is free now, and the
// min_free_space it keeps twice over.
func (s *Store) RoomToFetch(n int64) (free, minFree uint64, ok bool) {
	minFree = s.minFree.Load()
	free, err := s.FreeSpace()
	if err != nil {
		return 0, minFree, true // cannot tell: the writes themselves will say
	}
	return free, minFree, free >= uint64(max(n, 0))+2*minFree
}

// FreeSpace reports the bytes available to us on state_dir's file system.
func (s *Store) FreeSpace() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

var errReadOnly = errors.New("the store is open read-only")

func newReq(fn func(*sql.Tx) error, after func(error)) *writeReq {
	return &writeReq{fn: fn, after: after, done: make(chan struct{})}
}

// writeAsync queues fn for the next group commit and returns at once (it
// blocks only while the queue is full): the form for advice, see Pending.
// The committer keeps the order of requests, so a later waited-for write
// also proves every earlier one durable.
func (s *Store) writeAsync(fn func(*sql.Tx) error) *Pending { return s.writeAsyncThen(fn, nil) }

// writeAsyncThen is writeAsync with after run by the committer once the
// outcome is known (to wake a reader), whether or not anyone waits.
func (s *Store) writeAsyncThen(fn func(*sql.Tx) error, after func(error)) *Pending {
	r := newReq(fn, after)
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	switch {
	case s.readOnly, s.closed:
		r.state.Store(reqTaken)
		r.finish(s.cannotWrite())
	default:
		s.reqs <- r
	}
	return &Pending{r}
}

// writeWait runs fn in the next group commit and returns its outcome (fn's
// error, or the commit's) once the transaction is durable or failed.
//
// It honours ctx without ever lying about the outcome. While the request
// waits for room in the queue, or in the queue for the committer, an ended
// ctx withdraws it: the committer skips it, nothing is written, and
// ctx.Err() is returned. Once the committer has taken it, the write goes
// on whatever ctx says, and writeWait returns its real outcome: answering
// a client "451 try again" about a mail that then commits would make it
// send the lot twice.
func (s *Store) writeWait(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.writeWaitThen(ctx, fn, nil)
}

// writeWaitThen is writeWait with after run once the outcome is known.
func (s *Store) writeWaitThen(ctx context.Context, fn func(*sql.Tx) error, after func(error)) error {
	if s.readOnly {
		return errReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := newReq(fn, after)
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return s.cannotWrite()
	}
	select {
	case s.reqs <- r:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err() // never queued: nothing can commit
	}
	return (&Pending{r}).Wait(ctx)
}

// cannotWrite is why a write is refused before it is queued.
func (s *Store) cannotWrite() error {
	if s.readOnly {
		return errReadOnly
	}
	return errClosed
}

var errClosed = errors.New("the store is closed")

func (s *Store) committer() {
	defer close(s.done)
	var batch []*writeReq
	take := func(r *writeReq) {
		// A request its waiter withdrew (ctx ended) is skipped: the
		// waiter was told it is not written.
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			batch = append(batch, r)
		}
	}
	for first := range s.reqs {
		batch = batch[:0]
		take(first)
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				take(r)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			s.commit(batch)
		}
	}
}

// commit runs a batch in one transaction. Each request runs inside its own
// savepoint, so one failing request is rolled back alone and the rest commit.
func (s *Store) commit(batch []*writeReq) {
	errs := make([]error, len(batch))
	tx, err := s.w.Begin()
	if err != nil {
		for _, r := range batch {
			r.finish(fmt.Errorf("starting a queue transaction: %w", err))
		}
		return
	}
	for i, r := range batch {
		if _, err := tx.Exec("SAVEPOINT req"); err != nil {
			errs[i] = err
			continue
		}
		if errs[i] = r.fn(tx); errs[i] != nil {
			tx.Exec("ROLLBACK TO req")
		}
		tx.Exec("RELEASE req")
	}
	s.commits.Add(1)
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("committing to the queue: %w", err)
			}
		}
	}
	for i, r := range batch {
		r.finish(errs[i])
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}
