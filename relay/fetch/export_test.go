package fetch

import "context"

// Scheduled is a poll at a scheduled time, as Run makes it.
func (p *Poller) Scheduled(ctx context.Context) { p.scheduled(ctx) }
