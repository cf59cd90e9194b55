package sesam_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// The guard judges a lot by its bytes (DOMAIN.md): CMS enveloped-data is
// encrypted whatever its media type; signed-data, clear text and random
// bytes are not, whatever theirs. Real CMS comes from openssl, run on
// throwaway keys; a machine without openssl fails these tests.

const fundAddr = "01422@422.01.rss.fr"

func testLot(shape sesam.LotShape) sesam.SampleLot {
	return sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: fundAddr, Emitter: "12345678901234", Invoices: 3,
		At: time.Date(2026, 11, 24, 8, 15, 0, 0, time.UTC), Seq: 42, Payload: 1000, Shape: shape}
}

// runOpenssl runs openssl in dir and returns its standard output.
func runOpenssl(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// throwaway makes a self-signed RSA key and certificate in a temp folder:
// cert.pem and key.pem there.
func throwaway(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	runOpenssl(t, dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
		"-subj", "/CN=caisse de test", "-days", "2")
	return dir
}

// b2Entity is what a billing program encrypts or signs: the B2 part, here
// made-up records.
const b2Entity = "Content-Type: Application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\n\r\n" +
	"1000042 CABINET DE TEST - ENREGISTREMENT INVENTE, AUCUNE DONNEE REELLE\r\n"

// opensslCMS runs openssl cms or smime on b2Entity with these arguments and
// returns its output file.
func opensslCMS(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "b2.txt"), []byte(b2Entity), 0o600); err != nil {
		t.Fatal(err)
	}
	// The recipient certificate comes last: options go before it.
	args = append([]string{args[0], "-binary", "-in", "b2.txt", "-out", "out.cms"}, args[1:]...)
	runOpenssl(t, dir, args...)
	b, err := os.ReadFile(filepath.Join(dir, "out.cms"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lotWithParts is a lot mail (Subject, to a fund) of multipart/mixed parts;
// each part is a header block and a body written as given.
func lotWithParts(parts ...string) []byte {
	var b strings.Builder
	b.WriteString("From: <jean.dupont@laposte.net>\r\nTo: <" + fundAddr + ">\r\nSubject: " + testLot(0).Subject() + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--b\r\n" + p + "\r\n")
	}
	b.WriteString("--b--\r\n")
	return []byte(b.String())
}

// singlePart is a single-part lot: its top-level header and body.
func singlePart(header, body string) []byte {
	return []byte("From: <jean.dupont@laposte.net>\r\nTo: <" + fundAddr + ">\r\nSubject: " + testLot(0).Subject() + "\r\nMIME-Version: 1.0\r\n" +
		header + "\r\n" + body)
}

func base64Part(ctype string, der []byte) string {
	return "Content-Type: " + ctype + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64Lines(der)
}

func base64Lines(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var s strings.Builder
	for len(enc) > 76 {
		s.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	s.WriteString(enc + "\r\n")
	return s.String()
}

// leafBodies returns the decoded bodies of a mail's non-multipart parts.
func leafBodies(t testing.TB, raw []byte) [][]byte {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var visit func(e *message.Entity)
	visit = func(e *message.Entity) {
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				visit(p)
			}
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	visit(e)
	return out
}

func sent(t *testing.T, name string, raw []byte) {
	t.Helper()
	if o := sesam.InspectOutbound(raw, []string{fundAddr}); o.Clear || !o.Encrypted || !o.Lot {
		t.Errorf("%s: an encrypted lot would be held: %+v", name, o)
	}
}

func held(t *testing.T, name string, raw []byte, why string) {
	t.Helper()
	if o := sesam.InspectOutbound(raw, []string{fundAddr}); !o.Clear || !strings.Contains(o.ClearWhy, why) {
		t.Errorf("%s: not held with a reason saying %q: %+v", name, why, o)
	}
}

func TestGeneratedLotsCarryCMSThatOpensslReads(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		shape sesam.LotShape
		want  []string
	}{
		{sesam.LotMultipart, []string{"d.envelopedData:", "pkcs7-envelopedData", "rsaEncryption", "aes-256-cbc", "contentType: pkcs7-data"}},
		{sesam.LotSinglePart, []string{"d.envelopedData:", "rsaEncryption", "aes-256-cbc"}},
		{sesam.LotSignedOnly, []string{"d.signedData:", "pkcs7-signedData", "sha256", "eContentType: pkcs7-data"}},
	} {
		bodies := leafBodies(t, testLot(c.shape).Mail())
		if len(bodies) != 1 {
			t.Fatalf("shape %d: %d leaf parts, want 1", c.shape, len(bodies))
		}
		p := filepath.Join(dir, "lot.der")
		if err := os.WriteFile(p, bodies[0], 0o600); err != nil {
			t.Fatal(err)
		}
		out := string(runOpenssl(t, dir, "cms", "-cmsout", "-print", "-inform", "DER", "-in", p))
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("shape %d: openssl's print lacks %q:\n%s", c.shape, w, out)
			}
		}
	}
}

func TestSinglePartEncryptedLotIsSent(t *testing.T) {
	raw := testLot(sesam.LotSinglePart).Mail()
	if !bytes.Contains(raw, []byte("\r\nContent-Type: Application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\n")) || bytes.Contains(raw, []byte("multipart")) {
		t.Fatalf("not the single-part shape:\n%s", raw[:400])
	}
	sent(t, "single-part lot", raw)
}

func TestMultipartEncryptedLotIsSentWhateverItsPartIsLabelled(t *testing.T) {
	raw := testLot(sesam.LotMultipart).Mail()
	sent(t, "pkcs7-mime", raw)
	// Some mail programs attach smime.p7m as a plain file.
	octet := bytes.Replace(raw, []byte("application/pkcs7-mime; smime-type=enveloped-data;"), []byte("application/octet-stream;"), 1)
	sent(t, "octet-stream", octet)
}

func TestRealOpensslEncryptedLotsAreSent(t *testing.T) {
	dir := throwaway(t)
	// openssl's own S/MIME mail: a single application/x-pkcs7-mime part.
	smime := opensslCMS(t, dir, "smime", "-encrypt", "-aes256", "-to", fundAddr, "-from", "jean.dupont@laposte.net", "-subject", testLot(0).Subject(), "cert.pem")
	sent(t, "openssl smime -encrypt", smime)

	der := opensslCMS(t, dir, "cms", "-encrypt", "-aes256", "-outform", "DER", "cert.pem")
	sent(t, "DER in the single-part EDI-consent shape", singlePart("Content-Type: Application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\nContent-Transfer-Encoding: base64\r\n", base64Lines(der)))
	sent(t, "DER in a multipart pkcs7-mime part", lotWithParts(base64Part("application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m", der)))

	ber := opensslCMS(t, dir, "cms", "-encrypt", "-aes256", "-stream", "-outform", "DER", "cert.pem")
	if len(ber) < 2 || ber[1] != 0x80 {
		t.Fatalf("openssl -stream did not write an indefinite length: % x", ber[:8])
	}
	sent(t, "BER (indefinite lengths)", singlePart("Content-Type: Application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\nContent-Transfer-Encoding: base64\r\n", base64Lines(ber)))

	gcm := opensslCMS(t, dir, "cms", "-encrypt", "-aes-256-gcm", "-outform", "DER", "cert.pem")
	if sesam.SniffCMS(gcm) != sesam.CMSEnveloped {
		t.Fatalf("authEnveloped-data (AES-GCM) sniffed as %s", sesam.SniffCMS(gcm))
	}
	sent(t, "authEnveloped-data", lotWithParts(base64Part("application/pkcs7-mime; smime-type=authEnveloped-data", gcm)))
}

func TestSignedOnlyLotIsHeld(t *testing.T) {
	dir := throwaway(t)
	signed := opensslCMS(t, dir, "smime", "-sign", "-nodetach", "-outform", "DER", "-signer", "cert.pem", "-inkey", "key.pem")
	if k := sesam.SniffCMS(signed); k != sesam.CMSSigned {
		t.Fatalf("openssl's signed-data sniffed as %s", k)
	}
	held(t, "openssl signed-data in pkcs7-mime", lotWithParts(base64Part("application/pkcs7-mime; smime-type=signed-data; name=smime.p7m", signed)), "only signed")
	held(t, "signed-data in the single-part EDI-consent shape",
		singlePart("Content-Type: Application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\nContent-Transfer-Encoding: base64\r\n", base64Lines(signed)), "only signed")
	held(t, "generated signed-only lot", testLot(sesam.LotSignedOnly).Mail(), "only signed")
}

func TestPkcs7PartWhoseBytesAreNotEncryptedIsHeld(t *testing.T) {
	record := "1000042" + strings.Repeat(" ENREGISTREMENT B2 INVENTE", 5)[:121] + "\r\n"
	held(t, "a B2 record in clear labelled pkcs7-mime",
		lotWithParts("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\n"+record), "is not CMS at all")
	noise := make([]byte, 600)
	for i := range noise {
		noise[i] = byte(i*7 + 3)
	}
	held(t, "random bytes labelled pkcs7-mime", lotWithParts(base64Part("application/pkcs7-mime; smime-type=enveloped-data", noise)), "no S/MIME encrypted part")
	noise[0] = 0x30
	held(t, "random bytes opening with a SEQUENCE", lotWithParts(base64Part("application/pkcs7-mime; smime-type=enveloped-data", noise)), "no S/MIME encrypted part")
	// A CMS header and nothing after the version: no recipients, no ciphertext.
	stub, _ := base64.StdEncoding.DecodeString("MIAGCSqGSIb3DQEHA6CAMIACAQA=")
	held(t, "an enveloped-data header with nothing after it", lotWithParts(base64Part("application/pkcs7-mime; smime-type=enveloped-data", stub)), "no S/MIME encrypted part")
}

func TestCareSheetReadableInClearIsHeldEvenBesideAnEncryptedPart(t *testing.T) {
	dir := throwaway(t)
	der := opensslCMS(t, dir, "cms", "-encrypt", "-aes256", "-outform", "DER", "cert.pem")
	encrypted := base64Part("application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m", der)
	clear := "1000042 ENREGISTREMENT B2 INVENTE, EN CLAIR\r\n"
	held(t, "IRIS/B2 labelled pkcs7-mime, in clear", lotWithParts(encrypted,
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Description: IRIS/B2/Z\r\n\r\n"+clear), "IRIS/B2/Z")
	held(t, "IRIS/B2 as octet-stream, in clear", lotWithParts(encrypted,
		"Content-Type: application/octet-stream\r\nContent-Description: IRIS/B2/Z\r\n\r\n"+clear), "IRIS/B2/Z")
	held(t, "EDI-consent in clear", lotWithParts(encrypted,
		"Content-Type: Application/EDI-consent\r\n\r\n"+clear), "application/edi-consent")
	signed := opensslCMS(t, dir, "smime", "-sign", "-nodetach", "-outform", "DER", "-signer", "cert.pem", "-inkey", "key.pem")
	held(t, "IRIS/B2 signed only", lotWithParts(encrypted,
		base64Part("application/pkcs7-mime; smime-type=signed-data\r\nContent-Description: IRIS/B2/Z", signed)), "only signed")
}
