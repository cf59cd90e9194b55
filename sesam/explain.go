package sesam

import "strings"

// Stage is the step of a delivery to the practitioner's provider that
// failed: what failed matters more to the reader than the code.
type Stage int

// The stages of an SMTP delivery, in order.
const (
	StageConnect  Stage = iota + 1 // reaching the provider: TCP, greeting, EHLO
	StageTLS                       // the TLS handshake or STARTTLS, the certificate
	StageLogin                     // AUTH
	StageMailFrom                  // MAIL FROM: the practice's address
	StageRcpt                      // RCPT TO: for a lot, the fund's address
	StageData                      // the DATA command
	StageBody                      // sending the mail's bytes
	StageDot                       // the reply to the final dot
	StageAfterDot                  // no reply to the final dot: the provider may have the mail
)

// Cause says how a stage failed.
type Cause int

// The ways a stage fails.
const (
	CauseReply       Cause = iota // the provider answered with an error code
	CauseTimeout                  // the provider did not answer in time
	CauseNetwork                  // unreachable, or the connection dropped
	CauseCertificate              // the provider's certificate could not be verified
	CauseUnsupported              // the provider offers no TLS, or no AUTH PLAIN or LOGIN
	CauseLocal                    // the relay's own settings: its password file, its TLS files
)

// SMTPFailure is a failed delivery to the provider, in the terms
// ExplainSMTPFailure words for the practitioner.
type SMTPFailure struct {
	Stage    Stage
	Cause    Cause
	Code     int    // the reply code when Cause is CauseReply
	Enhanced string // the enhanced status code ("5.1.1"), or ""
}

// Temporary reports whether the provider's reply is a 4xx: it may accept
// the same mail later.
func (f SMTPFailure) Temporary() bool { return f.Code >= 400 && f.Code < 500 }

// WontClear reports whether the failure will last until someone changes a
// setting (a refused password, an unverifiable certificate, the relay's
// own files): retrying alone will not get the mail through.
func (f SMTPFailure) WontClear() bool {
	switch f.Cause {
	case CauseCertificate, CauseUnsupported, CauseLocal:
		return true
	case CauseReply:
		return f.Code >= 500 && (f.Stage == StageLogin || f.Stage == StageMailFrom)
	}
	return false
}

// ExplainSMTPFailure says in plain French what failed, as a clause to
// follow "Motif : " or a colon: lower case, no final full stop, no word of
// the provider's own text (that goes on the "Détail technique" line). lot
// says the mail is a lot for a fund: its recipient is "la caisse".
func ExplainSMTPFailure(f SMTPFailure, lot bool) string {
	what := "ce message"
	if lot {
		what = "ce lot"
	}
	switch f.Cause {
	case CauseTimeout, CauseNetwork:
		switch {
		case f.Stage == StageAfterDot || (f.Stage == StageDot && f.Cause == CauseTimeout):
			return "la connexion avec votre messagerie a été coupée juste après l'envoi de " + what + " : votre messagerie l'a peut-être reçu"
		case f.Cause == CauseTimeout && f.Stage <= StageLogin:
			return "votre messagerie n'a pas répondu à temps lors de la connexion"
		case f.Cause == CauseTimeout:
			return "votre messagerie n'a pas répondu à temps pendant l'envoi"
		case f.Stage == StageConnect:
			return "le relais n'a pas pu joindre votre messagerie"
		}
		return "la connexion avec votre messagerie a été coupée pendant l'envoi"
	case CauseCertificate:
		return "le certificat de sécurité de votre messagerie n'a pas pu être vérifié"
	case CauseUnsupported:
		if f.Stage == StageLogin {
			return "votre messagerie ne propose aucun mode d'identification que le relais sache utiliser"
		}
		return "votre messagerie ne propose pas de connexion chiffrée : le relais refuse d'y envoyer le mot de passe en clair"
	case CauseLocal:
		if f.Stage == StageLogin {
			return "le relais n'a pas pu lire le mot de passe de votre messagerie"
		}
		return "un réglage du relais empêche la connexion chiffrée à votre messagerie"
	}
	var s string
	switch {
	case f.Code == 421:
		s = "votre messagerie a interrompu la connexion"
	case f.Stage == StageConnect:
		// The relay tries again whatever the code: no "définitif" here.
		if f.Temporary() {
			return "votre messagerie refuse pour l'instant les connexions du relais"
		}
		return "votre messagerie refuse les connexions du relais"
	case f.Stage == StageTLS:
		s = "votre messagerie a refusé la connexion chiffrée"
	case f.Stage == StageLogin && f.Temporary():
		s = "votre messagerie n'a pas pu vérifier l'identifiant et le mot de passe"
	case f.Stage == StageLogin:
		s = "votre messagerie a refusé l'identifiant ou le mot de passe"
	case f.Stage == StageMailFrom:
		s = "votre messagerie a refusé l'adresse d'expéditeur du cabinet"
	case f.Stage == StageRcpt && lot:
		s = "votre messagerie a refusé l'adresse de la caisse"
	case f.Stage == StageRcpt:
		s = "votre messagerie a refusé l'adresse du destinataire"
	case tooBig(f):
		s = what + " est trop volumineux pour votre messagerie"
	case strings.HasPrefix(f.Enhanced[min(len(f.Enhanced), 1):], ".7."):
		s = "votre messagerie a refusé " + what + " par une règle de sécurité"
	default:
		s = "votre messagerie a refusé " + what
	}
	switch {
	case f.Temporary():
		return s + " (refus temporaire)"
	case f.Code >= 500:
		return s + " (refus définitif)"
	}
	return s
}

// tooBig: 552 at the body or the dot, or the enhanced codes for a
// message or mailbox size limit (RFC 3463 X.3.4, X.2.3).
func tooBig(f SMTPFailure) bool {
	e := f.Enhanced[min(len(f.Enhanced), 1):]
	return e == ".3.4" || e == ".2.3" || (f.Code == 552 && f.Stage >= StageData)
}
