package warn_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
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
	cfg.Sesam.Count = "calendar" // these tests count hours; sesam tests the working days
	cfg.Sesam.DailySummary = "off"
	cfg.Accounts = []config.Account{{Name: "dupont", Address: "jean.dupont@laposte.net",
		Logins: []config.Login{{Name: "dupont-mobile", Human: true}, {Name: "compta"}}}}
	return st, &cfg
}

func enqueueLot(t *testing.T, st *store.Store, seq int) (int64, sesam.SampleLot) {
	lot := sesam.SampleLot{From: "a@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: 12, At: time.Now(), Seq: seq}
	id, err := enqueue(st, store.Envelope{Account: "dupont", To: []string{lot.Fund}}, lot.Mail())
	if err != nil {
		t.Fatal(err)
	}
	return id, lot
}

func sent(t *testing.T, st *store.Store, seq int) (int64, string) {
	id, lot := enqueueLot(t, st, seq)
	st.MarkSending(ctx, id)
	st.MarkSentAsync(id, "250").Wait(ctx)
	return id, strings.Split(lot.Subject(), "/")[2]
}

var uid uint32

func collect(t *testing.T, st *store.Store, body []byte) {
	t.Helper()
	uid++
	if a := added(st.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: uid}, body, nil)); a.Err != nil {
		t.Fatal(a.Err)
	}
}

// notices are the French notices a login sees, their decoded text.
func notices(t *testing.T, st *store.Store, login string) []string {
	t.Helper()
	v, err := st.View(login, "dupont")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range v {
		raw, _ := st.MailboxBody(m.ID)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
		out = append(out, subject+"\n\n"+string(body))
	}
	return out
}

func TestUndeliveredLotIsWarnedOnceToHumanLoginsOnly(t *testing.T) {
	st, cfg := setup(t)
	enqueueLot(t, st, 1)
	w := warn.New(cfg, st, slog.New(slog.DiscardHandler))
	w.Check(ctx, time.Now().Add(23*time.Hour))
	if ws, _ := st.Warnings("", time.Time{}, 20); len(ws) != 0 {
		t.Fatal("warned before 24 h")
	}
	w.Check(ctx, time.Now().Add(25*time.Hour))
	w.Check(ctx, time.Now().Add(26*time.Hour))
	ws, _ := st.Warnings("dupont", time.Time{}, 20)
	if len(ws) != 1 || ws[0].Kind != string(sesam.NoticeUndelivered) {
		t.Fatalf("%+v", ws)
	}
	for login, want := range map[string]int{"dupont-mobile": 1, "dupont": 0, "compta": 0} {
		if n := notices(t, st, login); len(n) != want {
			t.Errorf("%s sees %d messages, want %d", login, len(n), want)
		}
	}
}

func TestANegativePayloadUnderABareSubjectIsWarnedAsRejected(t *testing.T) {
	st, cfg := setup(t)
	_, stamp := sent(t, st, 1)
	collect(t, st, sesam.ARLMail{Subject: "ARL", Stamp: stamp, Outcome: sesam.ARLNegativeText(stamp, "SIGNATURE INVERIFIABLE")}.Mail())
	warn.New(cfg, st, slog.New(slog.DiscardHandler)).Check(ctx, time.Now())
	ws, _ := st.Warnings("dupont", time.Time{}, 20)
	if len(ws) != 1 || ws[0].Kind != string(sesam.NoticeRejected) {
		t.Fatalf("%+v", ws)
	}
	n := notices(t, st, "dupont-mobile")
	if len(n) != 2 || !strings.Contains(n[1], "rejet") || !strings.Contains(n[1], "SIGNATURE INVERIFIABLE") {
		t.Fatalf("notices: %q", n)
	}
}

func TestAnInvoiceRejectAsksToRebillThatInvoiceOnly(t *testing.T) {
	st, cfg := setup(t)
	id, stamp := sent(t, st, 1)
	collect(t, st, sesam.ARLMail{Subject: "ARL positif", Stamp: stamp, Outcome: sesam.ARLPositiveText(stamp)}.Mail())
	collect(t, st, sesam.NoemieMail{Payload: sesam.NoemieFile{Recipient: "12345678901234",
		Lots:     []sesam.NoemieLotRef{{Date: stamp[2:8], Number: stamp[16:]}},
		Invoices: []sesam.NoemieInvoice{{Number: "000000417", Rejects: []sesam.Reject{{Entity: "294", Code: "R042", Label: "ACTE NON REMBOURSABLE"}}, Claimed: -1, Paid: -1}},
	}.Bytes()}.Mail())
	w := warn.New(cfg, st, slog.New(slog.DiscardHandler))
	w.Check(ctx, time.Now())
	w.Check(ctx, time.Now().Add(time.Minute))
	lots, _ := st.Lots("dupont", time.Time{})
	if s := lots[0].Status(); lots[0].ID != id || s.State != sesam.LotAcknowledged || len(s.RejectedInvoices) != 1 {
		t.Fatalf("%+v", s)
	}
	ws, _ := st.Warnings("dupont", time.Time{}, 20)
	if len(ws) != 1 || !strings.HasPrefix(ws[0].Kind, string(sesam.NoticeInvoices)) || !strings.Contains(ws[0].Text, "417") {
		t.Fatalf("%+v", ws)
	}
	n := notices(t, st, "dupont-mobile")
	body := n[len(n)-1]
	for _, want := range []string{"417", "ACTE NON REMBOURSABLE", "ne renvoyez pas le lot", "11 autres"} {
		if !strings.Contains(body, want) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
}

// outageLedger is the store with a collection that failed since a time.
type outageLedger struct {
	*store.Store
	h store.FetchHealth
}

func (o outageLedger) FetchHealth(string) (store.FetchHealth, error) { return o.h, nil }

func TestAClosedProviderGivesOneOutageNoticeAndNoMissingARLNotices(t *testing.T) {
	st, cfg := setup(t)
	cfg.Accounts[0].Upstream.IMAP = config.Upstream{Addr: "imap.laposte.net:993", Host: "imap.laposte.net"}
	sent(t, st, 1)
	sent(t, st, 2)
	since := time.Now().Add(-time.Minute)
	l := outageLedger{st, store.FetchHealth{Health: store.Health{FailingSince: since, LastError: "NO [UNAVAILABLE] IMAP closed", LastSuccess: since.Add(-time.Minute)}, Blocked: true}}
	w := warn.New(cfg, l, slog.New(slog.DiscardHandler))
	for _, later := range []time.Duration{0, 50 * time.Hour, 100 * time.Hour} {
		w.Check(ctx, time.Now().Add(later))
	}
	ws, _ := st.Warnings("dupont", time.Time{}, 20)
	if len(ws) != 1 || !strings.HasPrefix(ws[0].Kind, string(sesam.NoticeOutage)) {
		t.Fatalf("want one outage notice and no missing-ARL notice: %+v", ws)
	}
	if n := notices(t, st, "dupont-mobile"); len(n) != 1 || !strings.Contains(n[0], "laposte.net") || !strings.Contains(n[0], "webmail") {
		t.Fatalf("%q", n)
	}
	// Collection comes back: one notice saying so.
	l.h = store.FetchHealth{Health: store.Health{LastSuccess: time.Now().Add(time.Second)}}
	w = warn.New(cfg, l, slog.New(slog.DiscardHandler))
	w.Check(ctx, time.Now().Add(101*time.Hour))
	w.Check(ctx, time.Now().Add(102*time.Hour))
	ws, _ = st.Warnings("dupont", time.Time{}, 20)
	if len(ws) != 2 || !strings.HasPrefix(ws[0].Kind, string(sesam.NoticeRecovered)) && !strings.HasPrefix(ws[1].Kind, string(sesam.NoticeRecovered)) {
		t.Fatalf("%+v", ws)
	}
}

// enqueue submits a mail and returns its id.
func enqueue(s *store.Store, e store.Envelope, body []byte) (int64, error) {
	a, err := s.Submit(context.Background(), e, body)
	return a.ID, err
}

// addResult is AddMail's outcome and error together, for one-line checks.
type addResult struct {
	store.Added
	Err error
}

func added(a store.Added, err error) addResult { return addResult{a, err} }
