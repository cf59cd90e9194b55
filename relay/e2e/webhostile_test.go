package e2e_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// webSession logs in to the page with Go's client and returns it, with
// the CSRF token of the page it landed on.
func webSession(t *testing.T, base, user, pw string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	token := func(path string) string {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfField.FindSubmatch(b)
		if m == nil {
			t.Fatalf("no CSRF token on %s:\n%s", path, b)
		}
		return string(m[1])
	}
	resp, err := c.PostForm(base+"/connexion", url.Values{"csrf": {token("/connexion")}, "identifiant": {user}, "mot_de_passe": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return c, token("/importer")
}

// webLoginAttempt posts one login with a fresh form, and returns the page.
func webLoginAttempt(t *testing.T, base, user, pw string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(base + "/connexion")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = c.PostForm(base+"/connexion", url.Values{"csrf": {string(csrfField.FindSubmatch(b)[1])}, "identifiant": {user}, "mot_de_passe": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ = io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func upload(t *testing.T, c *http.Client, base, csrf, query string, files map[string][]byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	for name, b := range files {
		fw, _ := mw.CreateFormFile("messages", name)
		fw.Write(b)
	}
	mw.Close()
	resp, err := c.Post(base+"/importer"+query, mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// What the review of the page reproduced: an upload far over the limit
// was parsed whole before the CSRF check (the daemon grew to 1.4 GB); a
// file of random bytes was "imported"; the token was taken from the URL;
// page connections took the billing software's SMTP slots; answers to
// unknown paths were in English.
func TestPageBoundsUploadsAndConnectionsAndAnswersInFrench(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{listen: `web = ["127.0.0.1:0"]`})
	base := "https://" + r.web
	c, csrf := webSession(t, base, login, password)

	before := peakRSS(t, r.cmd.Process.Pid) >> 20
	big := bytes.Repeat([]byte("Subject: x\r\n\r\n"+strings.Repeat("A", 1000)+"\r\n"), 60<<10) // 60 MB
	code, page := upload(t, c, base, csrf, "", map[string][]byte{"enorme.eml": big})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(page, "trop gros") {
		t.Errorf("a 60 MB upload: %d\n%s", code, page)
	}
	if after := peakRSS(t, r.cmd.Process.Pid) >> 20; after-before > 40 {
		t.Errorf("a 60 MB upload grew the daemon's peak RSS from %d to %d MB", before, after)
	} else {
		t.Logf("peak RSS %d MB before, %d MB after a 60 MB upload", before, after)
	}
	random := make([]byte, 20<<10)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	code, page = upload(t, c, base, csrf, "", map[string][]byte{"photo.jpg": random})
	if code != http.StatusBadRequest || !strings.Contains(page, "n&#39;est pas un message enregistré") {
		t.Errorf("a file that is not a mail: %d\n%s", code, page)
	}
	if n := len(r.status().Accounts[0].Warnings); r.status().Accounts[0].Mailbox != 0 {
		t.Errorf("a refused upload was stored (%d warnings)", n)
	}
	code, page = upload(t, c, base, "", "?csrf="+url.QueryEscape(csrf), map[string][]byte{"accuse.eml": []byte("Subject: ARL\r\n\r\nx\r\n")})
	if code != http.StatusForbidden {
		t.Errorf("the CSRF token in the URL was taken: %d\n%s", code, page)
	}

	// Twelve connections held open to the page from one address: the
	// billing software on that address still submits.
	var held []net.Conn
	for range 12 {
		if conn, err := net.Dial("tcp", r.web); err == nil {
			held = append(held, conn)
		}
	}
	if res := r.python(pyArgs{}); len(res) != 1 || res[0].Code != 250 {
		t.Errorf("with page connections held open, the billing software's submission: %+v", res)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, 5*time.Second, "the held connections to be let go", func() bool {
		out, _ := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+r.web+"/").Output()
		return string(out) == "301"
	})

	// The address typed without https://: sent there, not answered in English.
	out, err := exec.Command("curl", "-s", "-i", "http://"+r.web+"/lots").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "301") || !strings.Contains(string(out), "Location: https://"+r.web+"/") || strings.Contains(string(out), "Client sent") {
		t.Errorf("http:// to the page: %v\n%s", err, out)
	}
	// Wrong passwords are throttled with SMTP's and POP3's rule, in French.
	var last string
	for range 7 {
		_, last = webLoginAttempt(t, base, login, "pas-le-bon")
	}
	if !strings.Contains(last, "Trop d&#39;essais manqués") {
		t.Errorf("the seventh wrong password:\n%s", last)
	}

	resp, err := c.Get(base + "/nulle-part")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), "Cette page n&#39;existe pas") {
		t.Errorf("an unknown path: %d\n%s", resp.StatusCode, b)
	}
}
