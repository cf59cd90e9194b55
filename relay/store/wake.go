package store

import "sync"

// wakers lets the deliverer sleep until there is something for an account,
// without the submission side ever calling the deliverer: both meet here.
type wakers struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (w *wakers) get(account string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = map[string]chan struct{}{}
	}
	c := w.ch[account]
	if c == nil {
		c = make(chan struct{}, 1)
		w.ch[account] = c
	}
	return c
}

// Wake returns a channel that receives after a message for account becomes
// due (accepted, released, retried). One token stands for any number of
// messages: the receiver then asks Due for all of them.
func (s *Store) Wake(account string) <-chan struct{} { return s.wake.get(account) }

func (s *Store) notify(account string) {
	select {
	case s.wake.get(account) <- struct{}{}:
	default:
	}
}

// Kick returns a channel that receives when a technician asks for a message
// to be tried now (retry, release): the deliverer then drops any pause it
// keeps after provider failures.
func (s *Store) Kick(account string) <-chan struct{} { return s.kick.get(account) }

func (s *Store) kickOwner(account string) {
	s.notify(account)
	select {
	case s.kick.get(account) <- struct{}{}:
	default:
	}
}

// ledgerKey is the waker of the lot ledger (no account has this name).
const ledgerKey = "\x00ledger"

// LedgerChanged returns a channel that receives after a return was stored
// for matching: the warner checks at once instead of at its next tick.
func (s *Store) LedgerChanged() <-chan struct{} { return s.wake.get(ledgerKey) }
