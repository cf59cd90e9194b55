package sesam_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// arlMail is an ARL mail with a Subject and, when payload is not empty, an
// EDI part carrying it.
func arlMail(subject, payload string) []byte {
	head := "From: <arl@cpam-exemple.test>\r\nTo: <jean.dupont@laposte.net>\r\nSubject: " + subject + "\r\nMessage-ID: <arl@cpam-exemple.test>\r\n"
	if payload == "" {
		return []byte(head + "\r\nAccuse de reception.\r\n")
	}
	return []byte(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nAccuse de reception logique\r\n" +
		"--b\r\nContent-Type: Application/EDI-Consent\r\nContent-Description: ARL\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(payload)) + "\r\n--b--\r\n")
}

// Every Subject the review met, and payloads that contradict them: an ARL
// is positive only when both say so.
func TestARLIsPositiveOnlyOnPositiveEvidenceInSubjectAndPayload(t *testing.T) {
	const pos, neg = "ARL POSITIF : LOT 2026112408150000042 RECU ET CONFORME", "LOT REJETE : SIGNATURE INVERIFIABLE"
	cases := []struct {
		subject, payload string
		want             sesam.Class
	}{
		{"ARL positif", pos, sesam.ARLPositive},
		{"Accusé de réception logique positif", pos, sesam.ARLPositive},
		{"ARL", neg, sesam.ARLNegative}, // the payload alone says rejected
		{"ARL", pos, sesam.ARLUnknown},  // the Subject says nothing
		{"ARL", "", sesam.ARLUnknown},
		{"ARL positif", "", sesam.ARLUnknown}, // nothing to confirm it
		{"ARL positif", neg, sesam.ARLUnknown},
		{"ARL positif", "FICHIER 000042", sesam.ARLUnknown},
		{"Accusé de réception logique négatif", "", sesam.ARLNegative},
		{"=?utf-8?q?Accus=C3=A9_de_r=C3=A9ception_logique_n=C3=A9gatif?=", pos, sesam.ARLUnknown},
		{"ARL KO", "", sesam.ARLNegative},
		{"Rejet ARL", "", sesam.ARLNegative},
		{"ARL non conforme", pos, sesam.ARLUnknown},
		{"ARL non conforme", "", sesam.ARLNegative},
		{"ARL NEGATIF", neg, sesam.ARLNegative},
	}
	for _, c := range cases {
		in := sesam.Classify(arlMail(c.subject, c.payload), nil)
		if in.Class != c.want {
			t.Errorf("Subject %q, payload %q: %s (%s), want %s", c.subject, c.payload, in.Class, in.Why, c.want)
		}
	}
}

func TestARLPayloadNegativeTextIsKeptForTheNotice(t *testing.T) {
	in := sesam.Classify(arlMail("ARL", "ARL NEGATIF\nLOT REJETE : SIGNATURE INVERIFIABLE"), nil)
	if in.ARL == nil || in.ARL.PayloadText != "ARL NEGATIF" && in.ARL.PayloadText != "LOT REJETE : SIGNATURE INVERIFIABLE" {
		t.Fatalf("%+v", in.ARL)
	}
}

// A configured rule may say which mails are positive ARLs, but never
// against a payload that says rejected.
func TestARuleCannotMakeANegativePayloadPositive(t *testing.T) {
	rules := []sesam.Rule{{Field: "from", Pattern: regexp.MustCompile(`arl@cpam`), Class: sesam.ARLPositive}}
	if c := sesam.Classify(arlMail("Retour", "LOT REJETE"), rules).Class; c != sesam.ARLUnknown {
		t.Fatalf("rule positive, payload rejected: %s", c)
	}
	if c := sesam.Classify(arlMail("Retour", "FICHIER 42"), rules).Class; c != sesam.ARLPositive {
		t.Fatalf("rule positive, payload silent: %s", c)
	}
}

func TestReturnsQuoteTheirLotStamp(t *testing.T) {
	in := sesam.Classify(arlMail("ARL positif - IR/12345678901234/2026112408150000042/00003", "LOT 2026112408150000099 CONFORME"), nil)
	if !in.Quotes("2026112408150000042") || !in.Quotes("2026112408150000099") || in.Quotes("2026112408150000043") {
		t.Fatalf("stamps %v", in.Stamps)
	}
}

// What a second review fed the polarity reader: negations written every
// way, plurals, Latin-1, words across lines, "no error" phrasings and a
// lot accepted with one invoice refused. None may read as a safe positive,
// and none of the accepted ones as a rejection to send again.
func TestARLNegationsPluralsAndMixedText(t *testing.T) {
	const stamp = "2026120415391100001"
	cases := []struct {
		subject, payload string
		want             sesam.Class
	}{
		{"ARL : lot non-conforme", "ARL : LOT " + stamp + " NON-CONFORME", sesam.ARLNegative},
		{"ARL positif", "LOT " + stamp + " NON ACCEPTE", sesam.ARLUnknown},
		{"ARL", "LOT " + stamp + " NON ACCEPTE", sesam.ARLNegative},
		{"ARL", "LOT PAS CONFORME", sesam.ARLNegative},
		{"ARL", "STATUT LOT : NON OK", sesam.ARLNegative},
		{"ARL", "ARL NON POSITIF", sesam.ARLNegative},
		{"ARL", "LOT NON-RECEVABLE", sesam.ARLNegative},
		{"ARL", "LOT NON\u00a0CONFORME", sesam.ARLNegative},
		{"ARL", "LOT NON  CONFORME", sesam.ARLNegative},
		{"ARL", "STATUT=NON_CONFORME", sesam.ARLNegative},
		{"ARL", "LOT NON\nCONFORME", sesam.ARLNegative},
		{"ARL", "LOT NON ACCEPT\xC9", sesam.ARLNegative}, // Latin-1
		{"ARL", "FACTURES REJETES", sesam.ARLNegative},
		{"ARL", "REJETS:2", sesam.ARLNegative},
		{"ARL", "LE LOT N'A PAS ETE PRIS EN COMPTE", sesam.ARLNegative},
		{"ARL", "ANOMALIES : 0 - LOT REJETE", sesam.ARLNegative},
		{"ARL", "0\nLOT REJETE", sesam.ARLNegative},
		{"ARL", "LOT 00000 REJETE", sesam.ARLNegative},
		{"ARL", strings.Repeat("LIGNE DE DONNEES SANS MARQUE\n", 3000) + "LOT REJETE", sesam.ARLNegative}, // past 64 KiB
		{"ARL positif", "LOT " + stamp + " RECU ET CONFORME - AUCUNE ANOMALIE", sesam.ARLPositive},
		{"ARL positif", "LOT " + stamp + " CONFORME - 0 ERREUR", sesam.ARLPositive},
		{"ARL positif", "LOT " + stamp + " ACCEPTE, PAS D'ANOMALIE", sesam.ARLPositive},
		{"ARL", "LOT " + stamp + " RECU ET CONFORME - AUCUNE ANOMALIE", sesam.ARLUnknown}, // the Subject says nothing
		{"ARL OK - rejet partiel", "LOT ACCEPTE - FACTURE 000000417 REJETEE", sesam.ARLUnknown},
		{"ARL", "LOT ACCEPTE - FACTURE 000000417 REJETEE", sesam.ARLUnknown},
		{"ARL négatif", "LOT ACCEPTE - FACTURE 000000417 REJETEE", sesam.ARLUnknown},
	}
	for _, c := range cases {
		in := sesam.Classify(arlMail(c.subject, c.payload), nil)
		if in.Class != c.want {
			t.Errorf("Subject %q, payload %q: %s (%s), want %s", c.subject, c.payload, in.Class, in.Why, c.want)
		}
	}
}
