package web_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/web"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// BenchmarkPage times each page for a practice whose ledger holds 10,000
// lots, one every 105 minutes for two years (the pages read the last three
// months: about 1,250), a quarter of them acknowledged, in a sealed store,
// as the browser asks for them (the session's cookie, TLS aside):
//
//	go test ./relay/web -run '^$' -bench Page -benchtime 20x
func BenchmarkPage(b *testing.B) {
	const lots = 10000
	ctx := context.Background()
	e, err := keys.New("relais.test")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	sealed := &store.Keys{Write: e, Read: openpgp.EntityList{e}}
	st, err := store.OpenSealed(dir, sealed)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range lots {
		lot := sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: 1 + i%30,
			At: now.Add(-time.Duration(i) * 105 * time.Minute), Seq: i + 1}
		body := lot.Mail()
		a, err := st.Submit(ctx, store.Envelope{Account: "dupont", From: lot.From, To: []string{lot.Fund}, MessageID: sesam.ReadHeaders(body).MessageID}, body)
		if err != nil {
			b.Fatal(err)
		}
		st.MarkSending(ctx, a.ID)
		st.MarkSentAsync(a.ID, "250 ok").Wait(ctx)
		if i%4 == 0 {
			stamp := strings.Split(lot.Subject(), "/")[2]
			arl := "From: cpam@exemple.test\r\nTo: jean.dupont@laposte.net\r\nSubject: ARL positif - IR/12345678901234/" + stamp + "/00001\r\nMessage-ID: <arl" + stamp + "@cpam.test>\r\n\r\nLot " + stamp + " : ACCUSE DE RECEPTION POSITIF\r\n"
			if _, err := st.AddMail(ctx, "dupont", store.Origin{Kind: store.Imported}, []byte(arl), nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Two years of lots: each one submitted when its stamp says.
	st.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, "sesam-relay.db"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE messages SET received_at = received_at - (id - 1) * 105 * 60000, done_at = done_at - (id - 1) * 105 * 60000 WHERE done_at > 0`); err != nil {
		b.Fatal(err)
	}
	db.Close()
	if st, err = store.OpenSealed(dir, sealed); err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hash, _ := auth.Hash("pw")
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "dupont", PasswordHash: hash, Address: "jean.dupont@laposte.net"}}
	h := &control.Handler{Store: st, Config: &cfg}
	srv := httptest.NewTLSServer(web.New(web.Options{Logins: auth.NewChecker(map[string]string{"dupont": hash}), AccountOf: map[string]string{"dupont": "dupont"},
		Throttle: auth.NewThrottle(5, time.Minute, 0), Handler: func() *control.Handler { return h }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxImport: 20 << 20}))
	defer srv.Close()
	c := srv.Client()
	jar := &jarOf{}
	c.Jar = jar
	resp, _ := c.Get(srv.URL + "/connexion")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)[1]
	resp, err = c.PostForm(srv.URL+"/connexion", url.Values{"csrf": {string(token)}, "identifiant": {"dupont"}, "mot_de_passe": {"pw"}})
	if err != nil || resp.Request.URL.Path != "/" {
		b.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	for _, path := range []string{"/", "/lots", "/lots?filtre=a-verifier", "/lots/600", "/avis"} {
		b.Run(strings.Trim(path, "/"), func(b *testing.B) {
			for b.Loop() {
				resp, err := c.Get(srv.URL + path)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("%s: %v %v", path, err, resp)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// jarOf keeps the cookies of one test server, Secure ones included.
type jarOf struct{ cookies []*http.Cookie }

func (j *jarOf) SetCookies(u *url.URL, cs []*http.Cookie) {
	for _, c := range cs {
		kept := j.cookies[:0]
		for _, o := range j.cookies {
			if o.Name != c.Name {
				kept = append(kept, o)
			}
		}
		j.cookies = kept
		if c.MaxAge >= 0 {
			j.cookies = append(j.cookies, c)
		}
	}
}

func (j *jarOf) Cookies(u *url.URL) []*http.Cookie { return j.cookies }
