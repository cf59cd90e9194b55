package control_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// The review's case: with 1,062 mails waiting, `queue` showed the newest
// 1,000 and said nothing of the other 62. Every page states the total, and
// the pages together hold every mail once.
func TestTheQueueIsPagedWithItsTotalAndHidesNothing(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 1062
	for i := 0; i < n; i++ {
		env := store.Envelope{Account: "dupont", From: "a@b.test", To: []string{"c@d.test"}, Subject: fmt.Sprint("mail ", i), MessageID: fmt.Sprintf("<%d@t>", i)}
		if _, err := enqueue(st, env, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	h := &control.Handler{Store: st, Config: &config.Config{}}
	seen := map[int64]bool{}
	pages := 0
	for page := 1; ; page++ {
		data, err := h.Handle(context.Background(), control.Request{Cmd: "queue", Page: page}, control.Local())
		if err != nil {
			t.Fatal(err)
		}
		p := data.(control.QueuePage)
		if p.Total != n || p.Pages != 3 {
			t.Fatalf("page %d: total %d, pages %d", page, p.Total, p.Pages)
		}
		for _, m := range p.Messages {
			if seen[m.ID] {
				t.Fatalf("message %d on two pages", m.ID)
			}
			seen[m.ID] = true
		}
		pages++
		if page == p.Pages {
			break
		}
	}
	if len(seen) != n || pages != 3 {
		t.Fatalf("%d messages in %d pages, want %d", len(seen), pages, n)
	}
}

// enqueue submits a mail and returns its id.
func enqueue(s *store.Store, e store.Envelope, body []byte) (int64, error) {
	a, err := s.Submit(context.Background(), e, body)
	return a.ID, err
}
