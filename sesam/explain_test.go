package sesam_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func TestFundInFrench(t *testing.T) {
	for addr, want := range map[string]string{
		"01422@422.01.rss.fr": "CPAM n° 422 (régime général)",
		"02123@123.02.rss.fr": "MSA n° 123 (régime agricole)",
		"03751@751.03.rss.fr": "RSI n° 751 (indépendants)",
		"91751@751.91.rss.fr": "MGEN n° 751",
		"12034@034.12.rss.fr": "caisse n° 034 (régime 12)",
	} {
		f, ok := sesam.ParseFundAddress(addr)
		if got := f.French(); !ok || got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

func TestExplainSMTPFailureSaysWhatFailed(t *testing.T) {
	cases := []struct {
		f    sesam.SMTPFailure
		lot  bool
		says string
	}{
		{sesam.SMTPFailure{Stage: sesam.StageRcpt, Code: 550, Enhanced: "5.1.1"}, true, "votre messagerie a refusé l'adresse de la caisse (refus définitif)"},
		{sesam.SMTPFailure{Stage: sesam.StageRcpt, Code: 450, Enhanced: "4.1.1"}, false, "l'adresse du destinataire (refus temporaire)"},
		{sesam.SMTPFailure{Stage: sesam.StageLogin, Code: 535, Enhanced: "5.7.8"}, true, "l'identifiant ou le mot de passe"},
		{sesam.SMTPFailure{Stage: sesam.StageMailFrom, Code: 553}, true, "l'adresse d'expéditeur"},
		{sesam.SMTPFailure{Stage: sesam.StageDot, Code: 552, Enhanced: "5.3.4"}, true, "ce lot est trop volumineux"},
		{sesam.SMTPFailure{Stage: sesam.StageData, Code: 554}, false, "a refusé ce message (refus définitif)"},
		{sesam.SMTPFailure{Stage: sesam.StageConnect, Code: 554}, true, "refuse les connexions du relais"},
		{sesam.SMTPFailure{Stage: sesam.StageMailFrom, Code: 421, Enhanced: "4.4.2"}, true, "a interrompu la connexion (refus temporaire)"},
		{sesam.SMTPFailure{Stage: sesam.StageConnect, Cause: sesam.CauseNetwork}, true, "n'a pas pu joindre votre messagerie"},
		{sesam.SMTPFailure{Stage: sesam.StageTLS, Cause: sesam.CauseCertificate}, true, "certificat"},
		{sesam.SMTPFailure{Stage: sesam.StageLogin, Cause: sesam.CauseTimeout}, true, "pas répondu à temps lors de la connexion"},
		{sesam.SMTPFailure{Stage: sesam.StageAfterDot, Cause: sesam.CauseNetwork}, true, "votre messagerie l'a peut-être reçu"},
		{sesam.SMTPFailure{Stage: sesam.StageLogin, Cause: sesam.CauseLocal}, true, "lire le mot de passe"},
	}
	for _, c := range cases {
		if got := sesam.ExplainSMTPFailure(c.f, c.lot); !strings.Contains(got, c.says) || strings.HasSuffix(got, ".") {
			t.Errorf("%+v: %q, want %q", c.f, got, c.says)
		}
	}
}

func TestPluralsAndDurationsInFrench(t *testing.T) {
	if got := sesam.Plural(1, "facture", "factures") + ", " + sesam.Plural(12, "facture", "factures"); got != "1 facture, 12 factures" {
		t.Error(got)
	}
	for d, want := range map[time.Duration]string{72 * time.Hour: "3 jours", 24 * time.Hour: "24 h", 90 * time.Minute: "1 h 30", 20 * time.Minute: "20 min", 4 * time.Second: "4 s"} {
		if got := sesam.FrenchDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}
