package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

func sendLot(t *testing.T, s *store.Store, at time.Time, seq int) (int64, sesam.Lot) {
	lot := sesam.Lot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: seq, At: at, Seq: seq}
	body := lot.Mail()
	id, err := s.Enqueue(ctx, store.Envelope{Account: "dupont", From: lot.From, To: []string{lot.Fund}, MessageID: sesam.ReadHeaders(body).MessageID}, body)
	if err != nil {
		t.Fatal(err)
	}
	s.MarkSending(ctx, id)
	<-s.MarkSent(id, "250 ok")
	return id, lot
}

func lotByID(t *testing.T, s *store.Store, id int64) store.Lot {
	lots, err := s.Lots("dupont", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lots {
		if l.ID == id {
			return l
		}
	}
	t.Fatalf("lot %d not in the ledger", id)
	return store.Lot{}
}

func TestReturnsAreMatchedToTheirLots(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	day1 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.Local)
	day2 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.Local)
	a, _ := sendLot(t, s, day1, 1)
	b, _ := sendLot(t, s, day2, 2)
	c, lotC := sendLot(t, s, day2.Add(time.Hour), 3)
	if l := lotByID(t, s, a); l.State != "delivered" || l.Fund != "01422" || l.Invoices != 1 || l.Emitter != "12345678901234" {
		t.Fatalf("lot A: %+v", l)
	}
	// An ARL quoting lot C's stamp: certain, whatever the order.
	stampC := strings.Split(lotC.Subject(), "/")[2]
	<-s.AddMail("dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, []byte("Subject: ARL positif "+stampC+"\r\n\r\nok\r\n"))
	if l := lotByID(t, s, c); l.State != "acknowledged" || len(l.Returns) != 1 || !l.Returns[0].Certain {
		t.Fatalf("lot C: %+v", l)
	}
	// An ARL with nothing to go on: the oldest lot waiting, probable.
	<-s.AddMail("dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 2}, []byte("Subject: ARL positif\r\n\r\nok\r\n"))
	if l := lotByID(t, s, a); l.State != "acknowledged" || l.Returns[0].Certain || !strings.Contains(l.Returns[0].How, "oldest") {
		t.Fatalf("lot A: %+v", l)
	}
	// A NOEMIE reject for a lot dated day 2: lot B (C already answered... by an ARL, not a reject).
	rej := []byte("Subject: retour\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: application/edi-consent\r\nContent-Description: NOEMIE\r\n\r\n" +
		noemie(day2.Format("060102"), "R042", "ACTE NON REMBOURSABLE") + "\r\n--z--\r\n")
	<-s.AddMail("dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 3}, rej)
	l := lotByID(t, s, b)
	if l.State != "rejected" || len(l.Returns) != 1 || !strings.Contains(l.Returns[0].Detail, "ACTE NON REMBOURSABLE") || !strings.Contains(l.Returns[0].How, "same emitter and date") {
		t.Fatalf("lot B: %+v", l)
	}
}

func TestBounceFromTheProviderIsMatchedByMessageID(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, _ := sendLot(t, s, time.Now(), 1)
	m, _, _ := s.Get(id)
	dsn := "From: MAILER-DAEMON@laposte.net\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nx\r\n" +
		"--q\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + m.MessageID + "\r\n--q--\r\n"
	<-s.AddMail("dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 9}, []byte(dsn))
	l := lotByID(t, s, id)
	if l.State != "rejected" || !l.Returns[0].Certain || l.Returns[0].Class != "bounce" {
		t.Fatalf("%+v", l)
	}
}

func TestUndeliveredLotsAreNotMatched(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	lot := sesam.Lot{From: "a@b", Fund: "01422@422.01.rss.fr", Emitter: "1", Invoices: 1, At: time.Now(), Seq: 1}
	id, _ := s.Enqueue(ctx, store.Envelope{Account: "dupont", To: []string{lot.Fund}}, lot.Mail())
	<-s.AddMail("dupont", store.Origin{Kind: store.Imported}, []byte("Subject: ARL positif\r\n\r\nok\r\n"))
	if l := lotByID(t, s, id); l.State != "queued" || len(l.Returns) != 0 {
		t.Fatalf("an ARL was matched to a lot that never left: %+v", l)
	}
}

func noemie(lotDate, code, label string) string {
	pad := func(s string, n int) string { return (s + strings.Repeat(" ", n))[:n] }
	h := pad("000CP"+pad("01422000000000", 14)+pad("P", 6)+"PS"+pad("12345678901234", 14), 128)
	return h + "08001" + lotDate + "017@" + "29401" + pad(code, 4) + pad(label, 86) + "@"
}

func TestRebuildFindsTheSameMatches(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, lot := sendLot(t, s, time.Now(), 1)
	stamp := strings.Split(lot.Subject(), "/")[2]
	<-s.AddMail("dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, []byte("Subject: ARL positif "+stamp+"\r\n\r\nok\r\n"))
	before := lotByID(t, s, id)
	lots, matched, err := s.RebuildLedger(ctx)
	if err != nil || lots != 1 || matched != 1 {
		t.Fatalf("rebuild: %d lots, %d matched, %v", lots, matched, err)
	}
	after := lotByID(t, s, id)
	if after.State != before.State || after.State != "acknowledged" || len(after.Returns) != 1 || !after.Returns[0].Certain {
		t.Fatalf("before %+v\nafter %+v", before, after)
	}
}
