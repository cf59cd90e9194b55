package sesam_test

import (
	"bytes"
	"encoding/base64"
	"runtime"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func generatedCMS(t testing.TB, shape sesam.LotShape) []byte {
	return leafBodies(t, testLot(shape).Mail())[0]
}

func TestSniffCMSReadsTheContentTypeAndRefusesLookalikes(t *testing.T) {
	env := generatedCMS(t, sesam.LotMultipart)
	signed := generatedCMS(t, sesam.LotSignedOnly)
	stub, _ := base64.StdEncoding.DecodeString("MIAGCSqGSIb3DQEHA6CAMIACAQA=") // BER header, stops after the version
	with := func(b []byte, at int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[at:], v)
		return c
	}
	// The generated enveloped-data opens 30 82 LL LL 06 09 <oid: 9 bytes> a0 82 LL LL 30 82 LL LL 02 01 00 31 ...
	cases := []struct {
		name string
		b    []byte
		want sesam.CMSKind
	}{
		{"enveloped-data", env, sesam.CMSEnveloped},
		{"enveloped-data, its first 64 bytes", env[:64], sesam.CMSEnveloped},
		{"signed-data", signed, sesam.CMSSigned},
		{"BER enveloped-data with recipients", append(bytes.Clone(stub), 0x31, 0x80), sesam.CMSEnveloped},
		{"BER header with nothing after the version", stub, sesam.NotCMS},
		{"id-data ContentInfo", with(env, 14, 0x01), sesam.CMSOther},
		{"cut inside the OID", env[:10], sesam.NotCMS},
		{"empty", nil, sesam.NotCMS},
		{"clear text", []byte("1000042 ENREGISTREMENT B2 INVENTE"), sesam.NotCMS},
		{"PEM", []byte("-----BEGIN CMS-----\nMIIB7AYJKoZIhvcNAQcDoIIB3TCCAdkCAQAxggFD\n-----END CMS-----\n"), sesam.NotCMS},
		{"outer length shorter than its OID", with(env, 2, 0x00, 0x05), sesam.NotCMS},
		{"[0] longer than the ContentInfo", with(env, 17, 0xff, 0xff), sesam.NotCMS},
		{"5-byte length", with(env, 1, 0x85), sesam.NotCMS},
		{"indefinite length on a primitive OID", with(env, 5, 0x80), sesam.NotCMS},
		{"version 9", with(env, 25, 0x09), sesam.NotCMS},
		{"version not an INTEGER", with(env, 23, 0x04), sesam.NotCMS},
		{"content not a SEQUENCE", with(env, 19, 0x31), sesam.NotCMS},
		{"no SET after the version", with(env, 26, 0x04), sesam.NotCMS},
	}
	if env[0] != 0x30 || env[1] != 0x82 || env[4] != 0x06 || env[15] != 0xa0 || env[19] != 0x30 || env[23] != 0x02 || env[25] != 0x00 || env[26] != 0x31 {
		t.Fatalf("the generated enveloped-data does not open as the cases assume: % x", env[:27])
	}
	for _, c := range cases {
		if got := sesam.SniffCMS(c.b); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func FuzzSniffCMS(f *testing.F) {
	f.Add(generatedCMS(f, sesam.LotMultipart)[:sesam.CMSPrefix])
	f.Add(generatedCMS(f, sesam.LotSignedOnly)[:sesam.CMSPrefix])
	stub, _ := base64.StdEncoding.DecodeString("MIAGCSqGSIb3DQEHA6CAMIACAQAxgA==")
	f.Add(stub)
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x06, 0x09})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Lengths up to 4 GB can be claimed: none may cost memory.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		k := sesam.SniffCMS(b)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Fatalf("sniffing %d bytes allocated %d bytes", len(b), n)
		}
		if k != sesam.SniffCMS(append(bytes.Clone(b), 0x00, 0xff)) && len(b) >= sesam.CMSPrefix {
			t.Fatal("bytes past the prefix changed the verdict")
		}
		if k == sesam.CMSEnveloped || k == sesam.CMSSigned {
			if b[0] != 0x30 || !bytes.Contains(b[:min(len(b), 40)], []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01}) {
				t.Fatalf("%s without a SEQUENCE and a PKCS OID: % x", k, b[:min(len(b), 40)])
			}
		}
	})
}
