package control

import (
	"context"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/warn"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Store is what the technician's commands read and change in the store.
// *store.Store serves.
type Store interface {
	warn.LotReader
	UnmatchedReturns(account string, since time.Time, limit int) ([]store.Unmatched, error)
	Warnings(account string, since time.Time, limit int) ([]store.Warning, error)
	RebuildLedger(ctx context.Context) (lots, matched int, err error)

	List(f store.Filter) ([]store.Message, error)
	Count(f store.Filter) (int, error)
	Counts() (map[string]map[store.State]int, error)
	Get(id int64) (store.Message, []store.Event, error)
	StillDuplicate(id int64) (first int64, still bool, err error)
	Hold(ctx context.Context, id int64, reason, who string) error
	Release(ctx context.Context, id int64, who string) error
	Retry(ctx context.Context, id int64, who string) error
	RetryAccount(ctx context.Context, account, who string) (int, error)
	Drop(ctx context.Context, id int64, who string) error

	Mailbox(account string) ([]store.MailboxEntry, error)
	MailboxCount(account string) (int, error)
	MailboxEntryByID(id int64) (store.MailboxEntry, error)
	MailboxBody(id int64) ([]byte, error)
	AddMail(ctx context.Context, account string, o store.Origin, body []byte, in *sesam.Inbound) (store.Added, error)
	Restore(ctx context.Context, login string, id int64) error

	Health(account string) (store.Health, error)
	DeliveryFault() store.Fault
	FreeSpace() (uint64, error)
}
