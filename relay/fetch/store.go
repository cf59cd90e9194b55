package fetch

import (
	"context"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Store is what a poller needs of the store. *store.Store serves.
type Store interface {
	batchStore
	pollStore
}

// batchStore is what batch.go needs: the poison mark, the room left, the
// verdict on a message and its write.
type batchStore interface {
	MarkFound(account, folder string) (store.Classifying, bool, error)
	MarkClassifying(ctx context.Context, account, folder string, c store.Classifying) error
	DoneClassifying(ctx context.Context, account, folder string, uidValidity, hi uint32) error
	Classify(body []byte) sesam.Inbound
	AddMailAsync(account string, o store.Origin, body []byte, in *sesam.Inbound, out *store.Added) *store.Pending
	RoomToFetch(n int64) (free, minFree uint64, ok bool)
	Dir() string
}

// pollStore is what fetch.go needs: the folders' sync positions, the
// upstream copies to expire, and the polling health.
type pollStore interface {
	SyncState(account, folder string) (uidValidity, lastUID uint32, err error)
	ResetSync(ctx context.Context, account, folder string, uidValidity uint32) error
	UpstreamExpired(account, folder string, uidValidity uint32, before time.Time) ([]uint32, error)
	MarkUpstreamDeleted(ctx context.Context, account, folder string, uidValidity uint32, uids []uint32) error
	SetFetchHealthAsync(h store.FetchHealth) *store.Pending
	FetchHealth(account string) (store.FetchHealth, error)
	Health(account string) (store.Health, error) // the same provider's SMTP, as delivery records it
}
