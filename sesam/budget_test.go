package sesam_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// zeros is n MiB of zeros, gzip'd: a few KiB per MiB.
func zeros(t testing.TB, mib int) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for range mib {
		w.Write(zero)
	}
	w.Close()
	return b.Bytes()
}

// ediParts is a return holding these application/edi-consent parts.
func ediParts(parts ...[]byte) []byte {
	var b strings.Builder
	b.WriteString("From: <noemie@cpam.fr>\r\nSubject: retour\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n")
	for i, p := range parts {
		fmt.Fprintf(&b, "--z\r\nContent-Type: application/EDI-consent\r\nContent-Description: part %d\r\nContent-Transfer-Encoding: base64\r\n\r\n", i+1)
		enc := base64.StdEncoding.EncodeToString(p)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--z--\r\n")
	return []byte(b.String())
}

// allocated is how many bytes f allocates (TotalAlloc delta).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestSixteenGzipBombsAreUnknownWithinOneMessageBudget(t *testing.T) {
	bomb := zeros(t, 64)
	parts := make([][]byte, 16)
	for i := range parts {
		parts[i] = bomb
	}
	raw := ediParts(parts...)
	var in sesam.Inbound
	n := allocated(func() { in = sesam.Classify(raw, nil) })
	if in.Class != sesam.Unknown || !strings.HasPrefix(in.Why, "payload over budget: ") {
		t.Fatalf("class %s, why %q: want unknown, payload over budget", in.Class, in.Why)
	}
	// The budget is 16 MB of decoded payload; a buffer grown by doubling
	// and the MIME reader's own buffers stay well within 3 times that.
	if limit := uint64(3 * sesam.EDIBudget); n > limit {
		t.Fatalf("classifying a %d-byte mail of 16 gzip bombs allocated %d MB, want at most %d MB", len(raw), n>>20, limit>>20)
	}
	t.Logf("%d-byte mail, %d MB allocated, why %q", len(raw), n>>20, in.Why)
}

func TestEDIPayloadsAreReadOneAtATime(t *testing.T) {
	// Ten parts of 1.5 MiB each (15 MiB, inside the budget): a reader that
	// kept them all would allocate at least 15 MiB.
	part := bytes.Repeat([]byte("x"), 3<<19)
	parts := make([][]byte, 10)
	for i := range parts {
		parts[i] = part
	}
	raw := ediParts(parts...)
	seen := 0
	var err error
	n := allocated(func() {
		err = sesam.EachEDIPayload(raw, func(p sesam.Payload) bool {
			if len(p.Data) == len(part) {
				seen++
			}
			return true
		})
	})
	if err != nil || seen != 10 {
		t.Fatalf("err %v, %d whole payloads seen, want 10", err, seen)
	}
	if limit := uint64(8 << 20); n > limit {
		t.Fatalf("reading ten 1.5 MiB payloads allocated %d MB, want at most %d MB: payloads are kept, not read one at a time", n>>20, limit>>20)
	}
}

func TestClassifyStopsAtTheFirstNoemiePayload(t *testing.T) {
	f := noemieFile([][2]string{{"261124", "017"}}, nil, "")
	// Not NOEMIE, then NOEMIE, then a bomb that would put the mail over
	// budget if it were ever read.
	raw := ediParts([]byte("not a return"), []byte(f), zeros(t, 64))
	var in sesam.Inbound
	if n := allocated(func() { in = sesam.Classify(raw, nil) }); n > 4<<20 {
		t.Fatalf("classifying allocated %d MB: the bomb after the NOEMIE part was read", n>>20)
	}
	if in.Class != sesam.NoemiePayment || in.Noemie == nil || in.Noemie.Lots[0].Number != "017" {
		t.Fatalf("class %s, why %q: the NOEMIE part before the bomb should decide", in.Class, in.Why)
	}
	calls := 0
	err := sesam.EachEDIPayload(raw, func(sesam.Payload) bool { calls++; return calls < 2 })
	if err != nil || calls != 2 {
		t.Fatalf("err %v after %d calls: the walk must stop when told", err, calls)
	}
}

func TestTooManyMIMEPartsIsOverBudget(t *testing.T) {
	parts := make([][]byte, 1100)
	for i := range parts {
		parts[i] = []byte("x")
	}
	raw := ediParts(parts...)
	if in := sesam.Classify(raw, nil); in.Class != sesam.Unknown || !strings.Contains(in.Why, "MIME parts") {
		t.Fatalf("class %s, why %q", in.Class, in.Why)
	}
}

func TestClassifyRecoversFromAPanic(t *testing.T) {
	// A rule without a pattern makes the matcher panic: the mail must come
	// out Unknown with the reason, and the caller must go on.
	rules := []sesam.Rule{{Field: "subject", Pattern: (*regexp.Regexp)(nil), Class: sesam.ARLPositive}}
	in := sesam.Classify([]byte("Subject: ARL\r\n\r\nok\r\n"), rules)
	if in.Class != sesam.Unknown || !strings.Contains(in.Why, "classifier failed") {
		t.Fatalf("class %s, why %q", in.Class, in.Why)
	}
}
