package config

import (
	"fmt"
	"sort"
	"strings"
)

// Preset is a mail provider's published settings: `provider = "laposte.net"`
// in [account.upstream] fills in whatever of them the account leaves
// empty, and `sesam-relay account add` picks one from the address's domain.
type Preset struct {
	Name    string   // what provider = names
	Domains []string // the address domains it serves
	SMTP    string   // submission server URL
	IMAP    string   // where returns are collected
	// Username is the login's form: "address" (jean.dupont@orange.fr) or
	// "local" (jean.dupont, the part before the @).
	Username string
	// Spam is the spam folder as the fetcher asks for it: `\Junk` is the
	// folder the server marks as spam (RFC 6154 SPECIAL-USE), whatever its
	// name in the provider's language.
	Spam string
	// Webmail is where the practitioner reads mail, changes the password,
	// and saves returns during an outage.
	Webmail string
	Source  string // where the values come from
}

// Presets are the French mailboxes practitioners use. Every value was taken
// from the source named beside it; `account add` tries both logins once,
// so a preset that a provider changed is caught at installation, and any
// value can be overridden in [account.upstream].
var Presets = []Preset{
	{
		Name: "laposte.net", Domains: []string{"laposte.net"},
		// Mozilla ISPDB's laposte.net entry (smtp.laposte.net 465 SSL,
		// imap.laposte.net 993 SSL, %EMAILLOCALPART%), as ONLYOFFICE's mail
		// server seeds its provider table from it.
		SMTP: "smtps://smtp.laposte.net:465", IMAP: "imaps://imap.laposte.net:993", Username: "local",
		Spam: `\Junk`, Webmail: "https://www.laposte.net",
		Source: "Mozilla ISPDB (laposte.net)",
	},
	{
		Name: "orange.fr", Domains: []string{"orange.fr", "wanadoo.fr"},
		// Mozilla ISPDB, thunderbird/autoconfig ispdb/orange.fr.xml: imap.orange.fr
		// 993 SSL, smtp.orange.fr 465 SSL, %EMAILADDRESS%, domains orange.fr
		// and wanadoo.fr.
		SMTP: "smtps://smtp.orange.fr:465", IMAP: "imaps://imap.orange.fr:993", Username: "address",
		Spam: `\Junk`, Webmail: "https://messagerie.orange.fr",
		Source: "Mozilla ISPDB (ispdb/orange.fr.xml)",
	},
	{
		Name: "free.fr", Domains: []string{"free.fr"},
		// Mozilla ISPDB, thunderbird/autoconfig ispdb/free.fr.xml: imap.free.fr
		// 993 SSL, smtp.free.fr 465 SSL, %EMAILLOCALPART%.
		SMTP: "smtps://smtp.free.fr:465", IMAP: "imaps://imap.free.fr:993", Username: "local",
		Spam: `\Junk`, Webmail: "https://webmail.free.fr",
		Source: "Mozilla ISPDB (ispdb/free.fr.xml)",
	},
	{
		Name: "sfr.fr", Domains: []string{"sfr.fr", "neuf.fr", "cegetel.net", "club-internet.fr"},
		// smtp.sfr.fr 465 SSL and imap.sfr.fr 993 SSL as French client
		// guides list them (e.g. jasonchampagne/FormationVideo,
		// Ressources/Aide/configuration-messageries.md); the whole address
		// as login, as SFR's webmail asks for it. The former Neuf, Cegetel
		// and Club-Internet addresses are SFR's.
		SMTP: "smtps://smtp.sfr.fr:465", IMAP: "imaps://imap.sfr.fr:993", Username: "address",
		Spam: `\Junk`, Webmail: "https://webmail.sfr.fr",
		Source: "SFR's published client settings, as French guides list them",
	},
	{
		Name: "bbox.fr", Domains: []string{"bbox.fr"},
		// smtp.bbox.fr 587 (STARTTLS) and imap.bbox.fr 993 SSL as French
		// client guides list them (the same table as SFR's); the whole
		// address as login.
		SMTP: "smtp://smtp.bbox.fr:587", IMAP: "imaps://imap.bbox.fr:993", Username: "address",
		Spam: `\Junk`, Webmail: "https://www.mail.bbox.fr",
		Source: "Bouygues Telecom's published client settings, as French guides list them",
	},
}

// PresetNamed returns the preset provider = name asks for.
func PresetNamed(name string) (Preset, bool) {
	for _, p := range Presets {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// PresetFor returns the preset of an address's domain.
func PresetFor(address string) (Preset, bool) {
	_, domain, _ := strings.Cut(strings.ToLower(address), "@")
	for _, p := range Presets {
		for _, d := range p.Domains {
			if d == domain {
				return p, true
			}
		}
	}
	return Preset{}, false
}

// PresetNames lists the names provider = accepts.
func PresetNames() string {
	var n []string
	for _, p := range Presets {
		n = append(n, p.Name)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// LoginOf is the provider login for address in the preset's form.
func (p Preset) LoginOf(address string) string {
	if p.Username == "local" {
		local, _, _ := strings.Cut(address, "@")
		return local
	}
	return address
}

// apply fills in what the account's upstream leaves empty.
func (p Preset) apply(a *Account) error {
	u := &a.Upstream
	for _, f := range []struct {
		dst *Upstream
		src string
	}{{&u.SMTP, p.SMTP}, {&u.IMAP, p.IMAP}} {
		if f.dst.Addr == "" {
			if err := f.dst.UnmarshalText([]byte(f.src)); err != nil {
				return fmt.Errorf("preset %s: %v", p.Name, err) // a bad table entry, caught by its test
			}
		}
	}
	if u.Username == "" {
		u.Username = p.LoginOf(string(a.Address))
	}
	if len(u.Folders) == 0 {
		u.Folders = []string{"INBOX", p.Spam}
	}
	return nil
}
