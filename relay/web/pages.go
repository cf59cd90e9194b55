package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime/multipart"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// page is what every template gets.
type page struct {
	Title, Nav, CSRF, Login, Message string
	Lines                            []line
	Lots                             []lotRow
	Filter                           string
	Notices                          []noticeRow
	Imported                         *importResult
	PerDay, Delay                    template.HTML // Lots' charts
	Lot                              *lotDetail
	Tech                             bool // the login is the technician's: the tab shows
	Techn                            *techPage
}

// line is one of Accueil's: green, orange or red, the reason, what to do.
type line struct {
	What, Color, Text string
}

var funcs = template.FuncMap{}

func (s *Server) home(w http.ResponseWriter, r *http.Request, ss *session) {
	st, err := s.o.Handler().Status()
	if err != nil {
		s.fail(w, err)
		return
	}
	p := page{Title: "Accueil", Nav: "accueil", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician}
	for _, a := range st.Accounts {
		if a.Name == ss.account {
			p.Lines = homeLines(st, a, s.now())
		}
	}
	s.render(w, http.StatusOK, "accueil", p)
}

// provider names the practitioner's mail provider as they know it.
func provider(a control.AccountStatus) string {
	if _, d, ok := strings.Cut(a.Address, "@"); ok {
		return d
	}
	return "votre messagerie"
}

// at says a moment the French way: "à 14 h 05" today, "le 27/04 à 9 h"
// before; since, "depuis 14 h 05", "depuis le 27/04 à 9 h".
func at(t, now time.Time) string {
	if d, today := day(t, now); !today {
		return d
	}
	return "à " + hour(t.In(now.Location()))
}

func since(t, now time.Time) string {
	if d, today := day(t, now); !today {
		return "depuis " + d
	}
	return "depuis " + hour(t.In(now.Location()))
}

func hour(t time.Time) string {
	if t.Minute() == 0 {
		return fmt.Sprintf("%d\u00a0h", t.Hour())
	}
	return fmt.Sprintf("%d\u00a0h\u00a0%02d", t.Hour(), t.Minute())
}

func day(t, now time.Time) (string, bool) {
	t = t.In(now.Location())
	y, m, d := now.Date()
	return fmt.Sprintf("le %02d/%02d à %s", t.Day(), int(t.Month()), hour(t)), t.Year() == y && t.Month() == m && t.Day() == d
}

func homeLines(st control.Status, a control.AccountStatus, now time.Time) []line {
	prov := provider(a)
	send := line{What: "Envoi", Color: "vert", Text: "Vos lots partent normalement."}
	if !a.Health.LastSuccess.IsZero() {
		send.Text += " Dernier envoi " + at(a.Health.LastSuccess, now) + "."
	} else if a.Counts[store.Sent] == 0 {
		send = line{"Envoi", "gris", "Aucun lot n'est encore parti par le relais : le premier dira si " + prov + " l'accepte."}
	}
	h := a.Health
	switch {
	case st.LocalFault != nil:
		send = line{"Envoi", "rouge", "Le relais ne peut plus rien enregistrer (disque plein ou en panne) : vos lots restent dans votre logiciel. Appelez votre technicien aujourd'hui."}
	case !h.FailingSince.IsZero() && h.Failure == "credentials refused":
		send = line{"Envoi", "rouge", prov + " refuse le mot de passe " + since(h.FailingSince, now) + " : changez-le dans votre webmail, puis donnez le nouveau mot de passe à votre technicien. Vos lots attendent sur le relais : ne les renvoyez pas."}
	case !h.FailingSince.IsZero() && h.Failure == "access closed":
		send = line{"Envoi", "rouge", prov + " bloque l'envoi " + since(h.FailingSince, now) + ". Vos lots attendent sur le relais et partiront dès que " + prov + " rouvrira : ne les renvoyez pas. Prévenez votre technicien."}
	case !h.FailingSince.IsZero():
		send = line{"Envoi", "orange", prov + " ne répond pas " + since(h.FailingSince, now) + " : le relais réessaie tout seul. Vos lots attendent sur le relais : ne les renvoyez pas."}
	case a.Counts[store.Held] > 0:
		send = line{"Envoi", "rouge", plural(a.Counts[store.Held], "message bloqué", "messages bloqués") + " par le relais : ils ne partiront pas sans votre technicien. Appelez-le aujourd'hui et ne les renvoyez pas."}
	case a.Counts[store.Deferred] > 0:
		send = line{"Envoi", "orange", plural(a.Counts[store.Deferred], "message attend", "messages attendent") + " un nouvel essai : le relais réessaie tout seul."}
	}
	lines := []line{send}
	if a.Fetch == nil {
		return append(lines, line{"Relève", "gris", "Le relais ne relève pas vos messages : vos accusés de réception arrivent directement dans votre logiciel."})
	}
	f := a.Fetch
	get := line{"Relève", "vert", "Les retours de la caisse arrivent normalement."}
	if !f.LastSuccess.IsZero() {
		get.Text += " Dernière relève " + at(f.LastSuccess, now) + "."
	}
	switch {
	case !f.FailingSince.IsZero() && f.Failure == "credentials refused":
		get = line{"Relève", "rouge", prov + " refuse le mot de passe " + since(f.FailingSince, now) + " : changez-le dans votre webmail, puis donnez le nouveau mot de passe à votre technicien."}
	case !f.FailingSince.IsZero() && (f.Failure == "access closed" || f.Blocked):
		get = line{"Relève", "rouge", prov + " bloque la relève des messages " + since(f.FailingSince, now) + ". Vos lots partent quand même, mais leurs accusés de réception restent dans votre webmail : enregistrez-les et déposez-les dans la page Importer."}
	case !f.FailingSince.IsZero():
		get = line{"Relève", "orange", "La relève échoue " + since(f.FailingSince, now) + " : le relais réessaie tout seul."}
	}
	return append(lines, get)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// lotRow is one line of Lots.
type lotRow struct {
	ID                                      int64 // the queue's id: no health data in the URL
	Date, Fund, State, Color, Returns, Late string
	Invoices                                int
}

// lotDetail is a lot's own page.
type lotDetail struct {
	lotRow
	Sent, Advice string
	Returns      []noticeRow // what came back, with its date
	Bills        []string    // the invoices the fund rejected or already had
}

// stateFR is each lot state in the practitioner's words, with its color.
var stateFR = map[sesam.LotState][2]string{
	sesam.LotQueued:        {"en attente d'envoi", "orange"},
	sesam.LotDeferred:      {"envoi retardé, le relais réessaie", "orange"},
	sesam.LotSending:       {"en cours d'envoi", "orange"},
	sesam.LotHeld:          {"bloqué par le relais : appelez votre technicien", "rouge"},
	sesam.LotDuplicateHeld: {"bloqué : probablement déjà envoyé", "rouge"},
	sesam.LotDropped:       {"supprimé par le technicien, jamais parti", "gris"},
	sesam.LotBounced:       {"refusé par la messagerie", "rouge"},
	sesam.LotDelivered:     {"envoyé, en attente de l'accusé de réception", "orange"},
	sesam.LotReturned:      {"retours NOEMIE reçus, accusé de réception manquant", "orange"},
	sesam.LotProbablyAcked: {"probablement reçu par la caisse (à confirmer)", "orange"},
	sesam.LotAcknowledged:  {"reçu par la caisse", "vert"},
	sesam.LotToCheck:       {"à vérifier : la réponse de la caisse n'est pas claire", "rouge"},
	sesam.LotRejected:      {"rejeté par la caisse : réémettez-le depuis votre logiciel", "rouge"},
}

var classFR = map[sesam.Class]string{
	"arl-positive": "accusé de réception positif", "arl-negative": "accusé de réception négatif",
	"arl-unknown": "accusé de réception illisible", "noemie-payment": "paiement NOEMIE",
	"noemie-reject": "rejet NOEMIE", "noemie-warning": "avertissement NOEMIE", "bounce": "avis de non-remise",
}

// filters are Lots' views: name in the page, and which lots they keep.
var filters = map[string]func(control.LotView, time.Time) bool{
	"":           func(control.LotView, time.Time) bool { return true },
	"a-verifier": func(l control.LotView, _ time.Time) bool { return stateFR[l.State][1] == "rouge" || l.Late != "" },
	"en-attente": func(l control.LotView, _ time.Time) bool { return stateFR[l.State][1] == "orange" },
	"rejetes": func(l control.LotView, _ time.Time) bool {
		return l.State == sesam.LotRejected || l.State == sesam.LotBounced
	},
	"ce-mois": func(l control.LotView, now time.Time) bool {
		y, m, _ := now.Date()
		return l.LotAt.Year() == y && l.LotAt.Month() == m
	},
}

// lotWindow is how far back Lots reads the ledger.
const lotWindow = 3 // months

func (s *Server) accountLots(r *http.Request, ss *session) ([]control.LotView, error) {
	since := time.Now().AddDate(0, -lotWindow, 0).Format("2006-01-02")
	data, err := s.o.Handler().Handle(r.Context(), control.Request{Cmd: "lots", Account: ss.account, Since: since}, webCaller(ss))
	if err != nil {
		return nil, err
	}
	return data.(control.Lots).Lots, nil
}

func row(l control.LotView) lotRow {
	fr := stateFR[l.State]
	out := lotRow{ID: l.ID, Date: l.LotAt.Format("02/01/2006 15:04"), Fund: l.FundName, Invoices: l.Invoices, State: fr[0], Color: fr[1]}
	if l.Late != "" {
		out.Late = "en retard"
		out.Color = "rouge"
	}
	var back []string
	for _, rt := range l.Returns {
		back = append(back, classOf(rt.Class))
	}
	out.Returns = strings.Join(back, ", ")
	if n := len(l.RejectedInvoices); n > 0 {
		out.Returns = strings.TrimPrefix(out.Returns+", "+plural(n, "facture rejetée", "factures rejetées"), ", ")
	}
	return out
}

func classOf(c sesam.Class) string {
	if fr, ok := classFR[c]; ok {
		return fr
	}
	return "autre retour"
}

func (s *Server) lots(w http.ResponseWriter, r *http.Request, ss *session) {
	filter := r.URL.Query().Get("filtre")
	keep, ok := filters[filter]
	if !ok {
		filter, keep = "", filters[""]
	}
	all, err := s.accountLots(r, ss)
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	p := page{Title: "Lots", Nav: "lots", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician, Filter: filter}
	p.PerDay, p.Delay = charts(all, now)
	for i := len(all) - 1; i >= 0; i-- { // newest first
		if keep(all[i], now) {
			p.Lots = append(p.Lots, row(all[i]))
		}
	}
	s.render(w, http.StatusOK, "lots", p)
}

func (s *Server) lot(w http.ResponseWriter, r *http.Request, ss *session) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	all, err := s.accountLots(r, ss)
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, l := range all {
		if l.ID != id || id == 0 {
			continue
		}
		d := &lotDetail{lotRow: row(l), Sent: "pas encore parti"}
		if !l.Delivered.IsZero() {
			d.Sent = l.Delivered.In(s.zone()).Format("02/01/2006 à 15:04")
		}
		for _, rt := range l.Returns {
			d.Returns = append(d.Returns, noticeRow{Date: rt.Received.In(s.zone()).Format("02/01/2006 15:04"), Text: classOf(rt.Class)})
		}
		for _, inv := range l.RejectedInvoices {
			d.Bills = append(d.Bills, invoiceText(inv, "rejetée"))
		}
		for _, inv := range l.DuplicateInvoices {
			d.Bills = append(d.Bills, invoiceText(inv, "déjà reçue par la caisse : ne la facturez pas de nouveau"))
		}
		d.Advice = advice(l)
		s.render(w, http.StatusOK, "lot", page{Title: "Lot du " + d.Date, Nav: "lots", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician, Lot: d})
		return
	}
	s.render(w, http.StatusNotFound, "erreur", page{Title: "Lot introuvable", Nav: "lots", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician, Message: "Ce lot n'existe pas, ou il a plus de trois mois. Revenez à la page Lots."})
}

func invoiceText(inv sesam.InvoiceOutcome, what string) string {
	t := "Facture n° " + inv.Number + " " + what
	if inv.Label != "" {
		t += " (motif : " + inv.Label + ")"
	}
	return t
}

// advice is what the practitioner does about a lot, in one sentence.
func advice(l control.LotView) string {
	switch {
	case l.State == sesam.LotRejected:
		return "Ce lot n'a pas été pris en compte par la caisse : réémettez-le depuis votre logiciel."
	case l.State == sesam.LotAcknowledged && len(l.RejectedInvoices) > 0:
		return "Les autres factures ne sont pas concernées : ne renvoyez pas le lot, corrigez et refacturez les factures rejetées."
	case l.State == sesam.LotAcknowledged:
		return "La caisse a bien reçu ce lot : rien à faire."
	case l.State == sesam.LotHeld || l.State == sesam.LotDuplicateHeld || l.State == sesam.LotToCheck:
		return "Appelez votre technicien ; ne renvoyez pas ce lot avant."
	case l.State == sesam.LotBounced:
		return "Votre messagerie a refusé ce lot : appelez votre technicien. Si l'envoi reste impossible, prévenez votre caisse."
	case l.Late != "":
		return "Ce lot est en retard : appelez votre technicien ; ne le renvoyez pas avant."
	}
	return "Rien à faire pour l'instant : le relais vous préviendra si ce lot a un problème."
}

// noticeRow is one notice of Avis.
type noticeRow struct{ Date, Text string }

var noticeFR = map[sesam.NoticeKind]string{
	sesam.NoticeUndelivered: "Un lot n'est pas encore parti.",
	sesam.NoticeHeld:        "Un lot est bloqué par le relais : appelez votre technicien.",
	sesam.NoticeDuplicate:   "Un lot semble envoyé deux fois : le second est bloqué.",
	sesam.NoticeNoAck:       "Un lot n'a pas reçu d'accusé de réception dans le délai.",
	sesam.NoticeRejected:    "La caisse a rejeté un lot : réémettez-le depuis votre logiciel.",
	sesam.NoticeToCheck:     "La réponse de la caisse à un lot n'est pas claire : à vérifier.",
	sesam.NoticeBounced:     "Votre messagerie a refusé un lot.",
	sesam.NoticeInvoices:    "La caisse a rejeté des factures d'un lot.",
	sesam.NoticeOutage:      "Votre messagerie bloque la relève des messages.",
	sesam.NoticeRecovered:   "La relève des messages fonctionne de nouveau.",
	sesam.NoticeSummary:     "Résumé des lots du jour.",
}

func (s *Server) notices(w http.ResponseWriter, r *http.Request, ss *session) {
	ws, err := s.o.Handler().Store.Warnings(ss.account, time.Now().AddDate(0, -3, 0), 200)
	if err != nil {
		s.fail(w, err)
		return
	}
	p := page{Title: "Avis", Nav: "avis", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician}
	for i := len(ws) - 1; i >= 0; i-- {
		kind, _, _ := strings.Cut(ws[i].Kind, ":")
		if strings.HasPrefix(ws[i].Kind, string(sesam.NoticeInvoices)) {
			kind = string(sesam.NoticeInvoices)
		}
		text, ok := noticeFR[sesam.NoticeKind(kind)]
		if !ok {
			text = "Avis du relais."
		}
		p.Notices = append(p.Notices, noticeRow{Date: ws[i].At.In(s.zone()).Format("02/01/2006 15:04"), Text: text})
	}
	s.render(w, http.StatusOK, "avis", p)
}

type importResult struct{ Text string }

func importText(added, dup int) string {
	t := plural(added, "message importé", "messages importés")
	if added == 0 {
		t = "Aucun nouveau message"
	}
	if dup > 0 {
		t += ", " + plural(dup, "déjà présent", "déjà présents")
	}
	return t + ". Votre logiciel les recevra à sa prochaine relève ; ceux qui concernent un lot apparaissent aussi dans la page Lots."
}

func (s *Server) importPage(w http.ResponseWriter, r *http.Request, ss *session) {
	s.render(w, http.StatusOK, "importer", page{Title: "Importer", Nav: "importer", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician})
}

// importFiles takes .eml files saved from the webmail: the CLI's import
// (deduplicated, classified, matched to their lot, in the audit log).
func (s *Server) importFiles(w http.ResponseWriter, r *http.Request, ss *session) {
	p := page{Title: "Importer", Nav: "importer", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician}
	if r.MultipartForm == nil { // authed parsed the body, bounded
		p.Message = "Choisissez d'abord un ou plusieurs messages enregistrés (fichiers .eml)."
		s.render(w, http.StatusBadRequest, "importer", p)
		return
	}
	defer r.MultipartForm.RemoveAll()
	files := r.MultipartForm.File["messages"]
	if len(files) > maxImportFiles {
		p.Message = fmt.Sprintf("Déposez au plus %d messages à la fois.", maxImportFiles)
		s.render(w, http.StatusBadRequest, "importer", p)
		return
	}
	var raws [][]byte
	for _, fh := range files {
		b, err := readUpload(fh)
		if err != nil {
			p.Message = "« " + fh.Filename + " » " + err.Error() + " : rien n'a été importé."
			s.render(w, http.StatusBadRequest, "importer", p)
			return
		}
		raws = append(raws, b)
	}
	if len(raws) == 0 {
		p.Message = "Choisissez d'abord un ou plusieurs messages enregistrés (fichiers .eml)."
		s.render(w, http.StatusBadRequest, "importer", p)
		return
	}
	data, err := s.o.Handler().Handle(r.Context(), control.Request{Cmd: "import", Account: ss.account, Files: raws}, webCaller(ss))
	if err != nil {
		p.Message = "L'import a échoué : réessayez, et si cela recommence, appelez votre technicien."
		s.o.Log.Warn("web import failed", "login", ss.login, "error", err)
		s.render(w, http.StatusInternalServerError, "importer", p)
		return
	}
	im := data.(control.Imported)
	p.Imported = &importResult{importText(len(im.Added), im.Duplicates)}
	s.render(w, http.StatusOK, "importer", p)
}

// readUpload reads one uploaded file, which must be a mail as the
// webmail saves it (headers, then a body), at most maxImportFile bytes.
func readUpload(fh *multipart.FileHeader) ([]byte, error) {
	if fh.Size > maxImportFile {
		return nil, errors.New("est trop gros pour un accusé de réception ou un retour NOEMIE")
	}
	f, err := fh.Open()
	if err != nil {
		return nil, errors.New("n'a pas pu être lu")
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImportFile+1))
	if err != nil || len(b) > maxImportFile {
		return nil, errors.New("n'a pas pu être lu")
	}
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil || (m.Header.Get("From") == "" && m.Header.Get("Subject") == "") {
		return nil, errors.New("n'est pas un message enregistré depuis le webmail (fichier .eml)")
	}
	return b, nil
}

// webCaller names a page's login in the audit log.
func webCaller(ss *session) control.Caller { return control.Caller{UID: -1, Name: "web:" + ss.login} }

func (s *Server) fail(w http.ResponseWriter, err error) {
	s.o.Log.Warn("web page failed", "error", err)
	s.render(w, http.StatusInternalServerError, "erreur", page{Title: "Erreur", Message: "Le relais n'arrive pas à lire son état. Réessayez dans un instant ; si cela dure, appelez votre technicien."})
}
