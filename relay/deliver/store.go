package deliver

import (
	"context"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Store is what a worker needs of the store: the due mail, the marks of a
// delivery, and the local fault that pauses every worker. *store.Store
// serves.
type Store interface {
	Due(account string, now time.Time, limit int) ([]store.Message, error)
	NextAttempt(account string) (time.Time, bool, error)
	Body(id int64) ([]byte, error)
	Wake(account string) <-chan struct{}
	Kick(account string) <-chan struct{}

	MarkSending(ctx context.Context, id int64) error
	MarkSentAsync(id int64, reply string) *store.Pending
	MarkDeferred(ctx context.Context, id int64, why string, next time.Time) error
	MarkUncertain(ctx context.Context, id int64, why string) error
	Hold(ctx context.Context, id int64, reason, who string) error
	MarkBounced(ctx context.Context, id int64, why string, dsn []byte) error
	AddDelayNotice(ctx context.Context, id int64, notice []byte) error
	SetHealthAsync(h store.Health) *store.Pending
	Health(account string) (store.Health, error)

	Probe(ctx context.Context) (cleared bool, err error)
	DeliveryFault() store.Fault
	FailedWhileDelivering(err error) (f store.Fault, local, started bool)
}
