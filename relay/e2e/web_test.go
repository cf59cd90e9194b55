package e2e_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

const screens = "../../testdata/screens"

// browser is Debian's chromium, headless, with a phone's screen.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: .ci/test installs it (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(412, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first run starts the browser, and must have no deadline of its
	// own (it would stop the browser); each later step gets one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// step bounds one browser step: a page that never shows what is waited
// for fails the test instead of hanging it.
func step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}

// do runs steps in the browser, at most a minute.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text is what the page shows in sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("the text of %s: %v", sel, err)
	}
	return s
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(screens, 0o755)
	if err := os.WriteFile(filepath.Join(screens, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A practitioner on a phone, in a real browser against the real binary:
// logs in, reads on Accueil that the provider blocks collection (IMAP
// refused while SMTP works) and what to do, sees the lot just sent in
// Lots, uploads the ARL saved from the webmail and sees the lot received
// by the fund; a form posted without its CSRF token is refused; the
// session cookie is Secure, HttpOnly and SameSite=Strict. Each page is
// saved under testdata/screens/.
func TestPracticePageInARealBrowser(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0") // nothing answers there once closed
	imap := closed.Addr().String()
	closed.Close()
	r := newRelay(t, newProvider(t), opts{imap: imap, listen: `web = ["127.0.0.1:0"]`})
	if r.web == "" {
		t.Fatal("status does not list the web listener")
	}
	lot := sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 3, At: time.Now(), Seq: 3}
	p := filepath.Join(t.TempDir(), "lot.eml")
	os.WriteFile(p, lot.Mail(), 0o600)
	if res := r.python(pyArgs{"file": p, "to": fund}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submitting the lot: %+v", res)
	}
	waitFor(t, 10*time.Second, "the lot delivered", func() bool { return r.states()[store.Sent] == 1 })
	r.cli("fetch", "dupont") // refused on the IMAP port while SMTP works: access closed
	stamp := strings.Split(lot.Subject(), "/")[2]
	arlRaw, _ := os.ReadFile("../../testdata/mail/arl-positive.eml")
	arl := filepath.Join(t.TempDir(), "accuse.eml")
	os.WriteFile(arl, []byte(strings.ReplaceAll(string(arlRaw), "2026112408150000042", stamp)), 0o600)

	ctx := browser(t)
	base := "https://" + r.web
	do(t, ctx, "the login page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`input[name=identifiant]`))
	screenshot(t, ctx, "connexion")
	do(t, ctx, "a wrong password",
		chromedp.SendKeys(`input[name=identifiant]`, login), chromedp.SendKeys(`input[name=mot_de_passe]`, "pas-le-bon"),
		chromedp.Submit(`form.connexion`), chromedp.WaitVisible(`p.message`))
	if got := text(t, ctx, `main`); !strings.Contains(got, "Identifiant ou mot de passe incorrect.") {
		t.Fatalf("after a wrong password: %s", got)
	}
	do(t, ctx, "logging in",
		chromedp.SendKeys(`input[name=identifiant]`, login), chromedp.SendKeys(`input[name=mot_de_passe]`, password),
		chromedp.Submit(`form.connexion`), chromedp.WaitVisible(`section.ligne`))
	home := text(t, ctx, `main`)
	for _, want := range []string{"Envoi", "Vos lots partent normalement.", "Relève", "laposte.net bloque la relève des messages depuis", "déposez-les dans la page Importer"} {
		if !strings.Contains(home, want) {
			t.Errorf("Accueil lacks %q:\n%s", want, home)
		}
	}
	screenshot(t, ctx, "accueil")

	do(t, ctx, "Lots", chromedp.Navigate(base+"/lots"), chromedp.WaitVisible(`table`))
	if got := text(t, ctx, `table`); !strings.Contains(got, "envoyé, en attente de l'accusé de réception") || !strings.Contains(got, "CPAM n° 422") {
		t.Errorf("Lots before the ARL:\n%s", got)
	}
	do(t, ctx, "Importer", chromedp.Navigate(base+"/importer"), chromedp.WaitVisible(`input[type=file]`),
		chromedp.SetUploadFiles(`input[type=file]`, []string{arl}), chromedp.Submit(`form[action="/importer"]`),
		chromedp.WaitVisible(`p.fait`))
	if got := text(t, ctx, `p.fait`); !strings.Contains(got, "1 message importé") {
		t.Errorf("after the upload: %s", got)
	}
	screenshot(t, ctx, "importer")
	do(t, ctx, "Lots after the import", chromedp.Navigate(base+"/lots"), chromedp.WaitVisible(`table`))
	if got := text(t, ctx, `table`); !strings.Contains(got, "reçu par la caisse") || !strings.Contains(got, "accusé de réception positif") {
		t.Errorf("Lots after the ARL was imported:\n%s", got)
	}
	screenshot(t, ctx, "lots")
	if got := text(t, ctx, `main`); !strings.Contains(got, "Lots envoyés par jour") || !strings.Contains(got, "Délai médian jusqu'à l'accusé de réception") {
		t.Errorf("the charts of Lots:\n%s", got)
	}
	do(t, ctx, "a lot's page", chromedp.Click(`table a`), chromedp.WaitVisible(`dl`))
	if got := text(t, ctx, `main`); !strings.Contains(got, "La caisse a bien reçu ce lot : rien à faire.") || !strings.Contains(got, "accusé de réception positif") {
		t.Errorf("the lot's page:\n%s", got)
	}
	screenshot(t, ctx, "lot")
	if !strings.Contains(r.Log(), "caller=web:"+login) {
		t.Errorf("the import is not in the audit log under the page's login:\n%s", r.Log())
	}
	do(t, ctx, "Avis", chromedp.Navigate(base+"/avis"), chromedp.WaitVisible(`main`))
	screenshot(t, ctx, "avis")

	// A form whose CSRF token was taken out (as a page elsewhere would
	// post it) is refused.
	do(t, ctx, "a post without the CSRF token", chromedp.Navigate(base+"/importer"), chromedp.WaitVisible(`input[type=file]`))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('form[action="/importer"] input[name=csrf]').remove(); document.querySelector('form[action="/importer"]').submit(); true`)); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "the refusal", chromedp.WaitVisible(`p.message`))
	if got := text(t, ctx, `main`); !strings.Contains(got, "Formulaire refusé") && !strings.Contains(got, "plus valable") {
		t.Errorf("a post without the CSRF token: %s", got)
	}
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookie, "sesam_session") {
		t.Errorf("the session cookie is readable by scripts: %q", cookie)
	}
	out, err := exec.Command("curl", "-sk", "-D", "-", "-o", "/dev/null", "-d", "csrf=x&identifiant=a&mot_de_passe=b", base+"/connexion").CombinedOutput()
	if h := strings.ToLower(string(out)); err != nil || !strings.Contains(h, "content-security-policy: default-src 'none'") || !strings.Contains(h, "httponly; secure; samesite=strict") {
		t.Errorf("headers of the login page (curl):\n%s %v", out, err)
	}
}

// The technician's tab, for a login marked technician only: the queue with
// a lot the relay holds as uncertain (the provider cut the connection after
// the final dot); releasing it first asks for a yes and says why; once
// confirmed, the lot leaves. The practitioner's login has no such tab, and
// is refused the page.
func TestTechnicianPageAsksBeforeReleasingAnUncertainLot(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.DropAfterDot)
	r := newRelay(t, prov, opts{listen: `web = ["127.0.0.1:0"]`,
		accounts: "  [[account.login]]\n  name = \"tech\"\n  password_hash = \"" + passwordHash + "\"\n  technician = true\n"})
	lot := sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 2, At: time.Now(), Seq: 4}
	p := filepath.Join(t.TempDir(), "lot.eml")
	os.WriteFile(p, lot.Mail(), 0o600)
	if res := r.python(pyArgs{"file": p, "to": fund}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submitting the lot: %+v", res)
	}
	waitFor(t, 15*time.Second, "the lot held as uncertain", func() bool { return r.states()[store.Held] == 1 })

	ctx := browser(t)
	base := "https://" + r.web
	signIn := func(who string) {
		do(t, ctx, "logging in as "+who, chromedp.Navigate(base+"/connexion"), chromedp.WaitVisible(`input[name=identifiant]`),
			chromedp.SendKeys(`input[name=identifiant]`, who), chromedp.SendKeys(`input[name=mot_de_passe]`, password),
			chromedp.Submit(`form.connexion`), chromedp.WaitVisible(`section.ligne`))
	}
	signIn(login)
	if got := text(t, ctx, `header`); strings.Contains(got, "Technicien") {
		t.Errorf("the practitioner's login shows the Technicien tab: %s", got)
	}
	do(t, ctx, "the technician's page as the practitioner", chromedp.Navigate(base+"/technicien"), chromedp.WaitVisible(`p.message`))
	if got := text(t, ctx, `main`); !strings.Contains(got, "réservée à votre technicien") {
		t.Errorf("the practitioner on /technicien: %s", got)
	}
	do(t, ctx, "logging out", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`form.sortie`), chromedp.Submit(`form.sortie`), chromedp.WaitVisible(`form.connexion`))

	signIn("tech")
	if got := text(t, ctx, `header`); !strings.Contains(got, "Technicien") {
		t.Fatalf("the technician's login has no Technicien tab: %s\n%s", got, text(t, ctx, `main`))
	}
	sctx, cancel := step(ctx)
	err := chromedp.Do(sctx, chromedp.Navigate(base+"/technicien"), chromedp.WaitVisible(`h1`))
	cancel()
	if err != nil {
		out, _ := exec.Command("curl", "-sk", "-m", "5", base+"/technicien").CombinedOutput()
		t.Fatalf("the Technicien page: %v\n%s\n%s", err, out, r.Log())
	}
	if got := text(t, ctx, `main`); !strings.Contains(got, "File d'attente") {
		t.Fatalf("the Technicien page:\n%s\n%s", got, r.Log())
	}
	got := text(t, ctx, `main`)
	for _, want := range []string{"File d'attente", "bloqué", "Sauvegarde", "Aucune sauvegarde", "Journal (derniers avertissements)", "uncertain"} {
		if !strings.Contains(got, want) {
			t.Errorf("the Technicien page lacks %q:\n%s", want, got)
		}
	}
	screenshot(t, ctx, "technicien")
	do(t, ctx, "Libérer", chromedp.Click(`main form button`), chromedp.WaitVisible(`section.ligne.rouge`))
	if got := text(t, ctx, `main`); !strings.Contains(got, "il est peut-être déjà parti") || !strings.Contains(got, "libérer quand même") {
		t.Fatalf("releasing an uncertain lot does not ask first:\n%s", got)
	}
	screenshot(t, ctx, "technicien-confirmer")
	if st := r.states(); st[store.Held] != 1 {
		t.Fatalf("the lot left before the yes: %v", st)
	}
	prov.SetMode(demo.Normal)
	do(t, ctx, "the yes", chromedp.Click(`main form button`), chromedp.WaitVisible(`h1`))
	waitFor(t, 15*time.Second, "the released lot sent", func() bool { return r.states()[store.Sent] == 1 })
	if !strings.Contains(r.Log(), "caller=web:tech") {
		t.Errorf("the release is not in the audit log under web:tech:\n%s", r.Log())
	}
}
