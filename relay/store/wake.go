package store

import "sync"

// wakers is the store's one kind of wake-up signal: a reader sleeps on a
// channel until a write it cares about is durable, without the writing side
// ever calling the reader: both meet here. One token stands for any number
// of writes: the receiver then reads all of them. The store keeps three:
// mail due for an account (wake), a technician's "now" for an account
// (kick), and the lot ledger (ledger, under the key "").
type wakers struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (w *wakers) get(key string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = map[string]chan struct{}{}
	}
	c := w.ch[key]
	if c == nil {
		c = make(chan struct{}, 1)
		w.ch[key] = c
	}
	return c
}

// signal leaves a token for key's sleeper, if none waits there already.
func (w *wakers) signal(key string) {
	select {
	case w.get(key) <- struct{}{}:
	default:
	}
}

// Wake returns a channel that receives after a message for account becomes
// due (accepted, released, retried): the receiver then asks Due for all of
// them.
func (s *Store) Wake(account string) <-chan struct{} { return s.wake.get(account) }

func (s *Store) notify(account string) { s.wake.signal(account) }

// Kick returns a channel that receives when a technician asks for a message
// to be tried now (retry, release): the deliverer then drops any pause it
// keeps after provider failures.
func (s *Store) Kick(account string) <-chan struct{} { return s.kick.get(account) }

func (s *Store) kickOwner(account string) {
	s.wake.signal(account)
	s.kick.signal(account)
}

// LedgerChanged returns a channel that receives after a return was stored
// for matching (or the ledger rebuilt): the warner checks at once instead
// of at its next tick.
func (s *Store) LedgerChanged() <-chan struct{} { return s.ledger.get("") }

func (s *Store) ledgerChanged() { s.ledger.signal("") }
