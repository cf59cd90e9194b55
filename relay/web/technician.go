package web

import (
	"net/http"
	"strconv"

	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// techPage is the Technicien tab's content.
type techPage struct {
	Backup  line
	Queue   []queueRow
	Journal []string
	Confirm *queueRow // a release that needs a yes
}

type queueRow struct {
	ID                                   int64
	Received, State, Subject, Why, Color string
	Attempts                             int
	CanRetry, CanHold, CanRelease        bool
	Risk                                 string // why a release needs a yes
}

var queueFR = map[store.State]string{
	store.Queued: "en attente", store.Deferred: "nouvel essai prévu", store.Sending: "en cours d'envoi", store.Held: "bloqué",
}

func (s *Server) technician(ss *session, w http.ResponseWriter) bool {
	if !ss.technician {
		s.render(w, http.StatusForbidden, "erreur", page{Title: "Accès réservé", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician, Message: "Cette page est réservée à votre technicien."})
		return false
	}
	return true
}

// waiting is the account's waiting mail, as the technician acts on it.
func (s *Server) waiting(r *http.Request, ss *session) ([]queueRow, error) {
	data, err := s.o.Handler().Handle(r.Context(), control.Request{Cmd: "queue", Account: ss.account, Page: 1}, webCaller(ss))
	if err != nil {
		return nil, err
	}
	var rows []queueRow
	for _, m := range data.(control.QueuePage).Messages {
		q := queueRow{ID: m.ID, Received: m.Received.In(s.zone()).Format("02/01/2006 15:04"), State: queueFR[m.State], Subject: m.Subject,
			Attempts: m.Attempts, Why: m.LastError, Color: "orange",
			CanRetry: m.State == store.Deferred, CanHold: m.State == store.Queued || m.State == store.Deferred, CanRelease: m.State == store.Held}
		if m.State == store.Held {
			q.Color, q.Why = "rouge", m.HoldReason
		}
		switch {
		case m.Uncertain():
			q.Risk = "Le relais s'est arrêté pendant l'envoi de ce message : il est peut-être déjà parti. Le libérer peut donner deux fois ce lot à la caisse (doublon). Vérifiez d'abord dans le dossier « Envoyés » du webmail, ou auprès de la caisse, qu'il n'est pas arrivé."
		case m.Duplicate():
			q.Risk = "Ce message semble être un second envoi d'un lot que la caisse a peut-être déjà : le libérer peut faire rejeter ce lot comme doublon. Vérifiez d'abord que le premier envoi n'est pas arrivé."
		}
		rows = append(rows, q)
	}
	return rows, nil
}

func (s *Server) techHome(w http.ResponseWriter, r *http.Request, ss *session) {
	if !s.technician(ss, w) {
		return
	}
	h := s.o.Handler()
	st, err := h.Status()
	if err != nil {
		s.fail(w, err)
		return
	}
	rows, err := s.waiting(r, ss)
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	t := &techPage{Queue: rows}
	switch b := st.LastBackup; {
	case b == nil:
		t.Backup = line{"Sauvegarde", "rouge", "Aucune sauvegarde n'a été faite : une carte SD qui lâche emporterait tout (voir « Backups » dans le README)."}
	case now.Sub(b.At) > control.BackupWarnAge:
		t.Backup = line{"Sauvegarde", "rouge", "Dernière sauvegarde " + at(b.At, now) + ", il y a plus de deux jours : vérifiez la clé USB ou le partage réseau."}
	default:
		t.Backup = line{"Sauvegarde", "vert", "Dernière sauvegarde " + at(b.At, now) + "."}
	}
	if h.Live != nil && h.Live.Recent != nil {
		t.Journal = h.Live.Recent()
	}
	p := page{Title: "Technicien", Nav: "technicien", CSRF: ss.csrf, Login: ss.login, Tech: true, Techn: t}
	for _, a := range st.Accounts {
		if a.Name == ss.account {
			p.Lines = homeLines(st, a, now)
		}
	}
	s.render(w, http.StatusOK, "technicien", p)
}

// techAction retries, holds or releases one of the account's messages; a
// release that could send a lot twice asks for a yes first, saying why.
func (s *Server) techAction(w http.ResponseWriter, r *http.Request, ss *session) {
	if !s.technician(ss, w) {
		return
	}
	id, _ := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	action := r.PostFormValue("action")
	rows, err := s.waiting(r, ss)
	if err != nil {
		s.fail(w, err)
		return
	}
	var m *queueRow
	for i := range rows {
		if rows[i].ID == id {
			m = &rows[i]
		}
	}
	p := page{Title: "Technicien", Nav: "technicien", CSRF: ss.csrf, Login: ss.login, Tech: true}
	if m == nil || (action != "retry" && action != "hold" && action != "release") {
		p.Message = "Ce message n'est plus dans la file d'attente de ce compte."
		s.render(w, http.StatusNotFound, "erreur", p)
		return
	}
	confirm := r.PostFormValue("confirmer") == "oui"
	if action == "release" && m.Risk != "" && !confirm {
		p.Techn = &techPage{Confirm: m}
		s.render(w, http.StatusOK, "confirmer", p)
		return
	}
	req := control.Request{Cmd: action, ID: id, Confirm: confirm, Reason: "held from the page by " + ss.login}
	if _, err := s.o.Handler().Handle(r.Context(), req, webCaller(ss)); err != nil {
		s.o.Log.Warn("web technician action failed", "login", ss.login, "action", action, "id", id, "error", err)
		p.Message = "Le relais a refusé : " + err.Error()
		s.render(w, http.StatusConflict, "erreur", p)
		return
	}
	http.Redirect(w, r, "/technicien", http.StatusSeeOther)
}
