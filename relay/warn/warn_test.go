package warn_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/warn"
	"github.com/sesam-relay/sesam-relay/sesam"
)

var ctx = context.Background()

func setup(t *testing.T) (*store.Store, *config.Config) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Defaults()
	cfg.Hostname = "relais.test"
	cfg.Accounts = []config.Account{{Name: "dupont", Logins: []config.Login{{Name: "dupont-mobile", Human: true}, {Name: "compta"}}}}
	return st, &cfg
}

func enqueueLot(t *testing.T, st *store.Store, seq int) int64 {
	lot := sesam.Lot{From: "a@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: seq, At: time.Now(), Seq: seq}
	id, err := st.Enqueue(ctx, store.Envelope{Account: "dupont", To: []string{lot.Fund}}, lot.Mail())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestUndeliveredLotIsWarnedOnceToHumanLoginsOnly(t *testing.T) {
	st, cfg := setup(t)
	enqueueLot(t, st, 1)
	w := warn.New(cfg, st, slog.New(slog.DiscardHandler))
	w.Check(time.Now().Add(23 * time.Hour))
	if ws, _ := st.Warnings("", time.Time{}); len(ws) != 0 {
		t.Fatal("warned before 24 h")
	}
	w.Check(time.Now().Add(25 * time.Hour))
	w.Check(time.Now().Add(26 * time.Hour))
	ws, _ := st.Warnings("dupont", time.Time{})
	if len(ws) != 1 || ws[0].Kind != sesam.WarnUndelivered {
		t.Fatalf("%+v", ws)
	}
	for login, want := range map[string]int{"dupont-mobile": 1, "dupont": 0, "compta": 0} {
		if v, _ := st.View(login, "dupont"); len(v) != want {
			t.Errorf("%s sees %d messages, want %d", login, len(v), want)
		}
	}
}

func TestRejectedLotIsWarnedWithItsReason(t *testing.T) {
	st, cfg := setup(t)
	id := enqueueLot(t, st, 1)
	st.MarkSending(ctx, id)
	<-st.MarkSent(id, "250")
	<-st.AddMail("dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, []byte("Subject: ARL negatif lot\r\n\r\nrejet\r\n"))
	warn.New(cfg, st, slog.New(slog.DiscardHandler)).Check(time.Now())
	ws, _ := st.Warnings("dupont", time.Time{})
	if len(ws) != 1 || ws[0].Kind != sesam.WarnRejected || !strings.Contains(ws[0].Text, "ARL negatif lot") {
		t.Fatalf("%+v", ws)
	}
	v, _ := st.View("dupont-mobile", "dupont")
	body, _ := st.MailboxBody(v[len(v)-1].ID)
	if !strings.Contains(string(body), "rejet=C3=A9 par la caisse") && !strings.Contains(string(body), "rejeté par la caisse") {
		t.Fatalf("notice:\n%s", body)
	}
}
