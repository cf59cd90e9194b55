// Package web is the practice's page: HTTPS on the LAN, in French, for a
// practitioner's phone. A login of an account (its local password) sees
// that account: whether its lots leave and its returns come back, and
// what to do when not (Accueil), its lots (Lots), the relay's notices
// (Avis), and the import of returns saved from the webmail (Importer).
//
// Pages are rendered by the server (html/template), with one stylesheet
// from the binary and no script. Sessions live in memory (a restart logs
// everyone out) in a Secure, HttpOnly, SameSite=Strict cookie; every form
// carries a CSRF token; no health data goes in a URL; logins share the
// SMTP and POP3 throttle.
package web

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/control"
)

//go:embed templates/*.html templates/style.css
var files embed.FS

var pages = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/*.html"))

// Options is what the page needs of the running relay.
type Options struct {
	Logins    *auth.Checker
	AccountOf map[string]string // login -> account
	// Technicians are the logins marked technician = true.
	Technicians map[string]bool
	Throttle    *auth.Throttle
	Handler     func() *control.Handler
	Log         *slog.Logger
	// MaxImport bounds one upload (all its files together).
	MaxImport int64
	// Zone is the practice's time zone, for the times the page shows.
	Zone *time.Location
}

// Bounds of an upload: files, and bytes in one (a return is tens of KB).
const maxImportFiles, maxImportFile = 200, 5 << 20

const (
	cookieName  = "sesam_session"
	sessionLife = 8 * time.Hour
	idleLife    = time.Hour
	maxSessions = 1000
)

type session struct {
	login, account, csrf string
	technician           bool
	created, seen        time.Time
}

// Server serves the pages.
type Server struct {
	o        Options
	mu       sync.Mutex
	sessions map[string]*session
	mux      *http.ServeMux
}

// New makes the page's handler.
func New(o Options) *Server {
	s := &Server{o: o, sessions: map[string]*session{}, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /style.css", s.style)
	s.mux.HandleFunc("GET /connexion", s.loginPage)
	s.mux.HandleFunc("POST /connexion", s.login)
	s.mux.HandleFunc("POST /deconnexion", s.authed(s.logout))
	s.mux.HandleFunc("GET /{$}", s.authed(s.home))
	s.mux.HandleFunc("GET /lots", s.authed(s.lots))
	s.mux.HandleFunc("GET /lots/{id}", s.authed(s.lot))
	s.mux.HandleFunc("GET /avis", s.authed(s.notices))
	s.mux.HandleFunc("GET /importer", s.authed(s.importPage))
	s.mux.HandleFunc("POST /importer", s.authed(s.importFiles))
	s.mux.HandleFunc("GET /technicien", s.authed(s.techHome))
	s.mux.HandleFunc("POST /technicien", s.authed(s.techAction))
	return s
}

// ServeHTTP sets the headers every answer carries, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.render(w, http.StatusNotFound, "erreur", page{Title: "Page introuvable", Message: "Cette page n'existe pas. Revenez à l'accueil."})
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) style(w http.ResponseWriter, r *http.Request) {
	b, _ := files.ReadFile("templates/style.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(b)
}

// zone is the practice's time zone (the config's; the box's if unset).
func (s *Server) zone() *time.Location {
	if s.o.Zone != nil {
		return s.o.Zone
	}
	return time.Local
}

func (s *Server) now() time.Time { return time.Now().In(s.zone()) }

func token() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// current returns the request's session, or nil.
func (s *Server) current(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[c.Value]
	if ss == nil {
		return nil
	}
	if now.Sub(ss.created) > sessionLife || now.Sub(ss.seen) > idleLife {
		delete(s.sessions, c.Value)
		return nil
	}
	ss.seen = now
	return ss
}

// authed runs h for a logged-in request; a POST must carry the session's
// CSRF token. Others go to the login page.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := s.current(r)
		if ss == nil {
			http.Redirect(w, r, "/connexion", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !s.postToken(w, r, ss) {
			return
		}
		h(w, r, ss)
	}
}

// postToken bounds a form's body before reading any of it, then checks
// its CSRF token (in the body only, never the URL). It answers when not.
func (s *Server) postToken(w http.ResponseWriter, r *http.Request, ss *session) bool {
	limit := int64(16 << 10)
	if r.URL.Path == "/importer" {
		limit = s.o.MaxImport
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(1 << 20)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		s.render(w, http.StatusRequestEntityTooLarge, "erreur", page{Title: "Envoi refusé", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician,
			Message: "Ce que vous avez envoyé est trop gros ou illisible : déposez les messages par petits groupes (au plus 20 Mo à la fois)."})
		return false
	}
	if !sameToken(r.PostFormValue("csrf"), ss.csrf) {
		s.o.Log.Warn("web form refused: missing or wrong CSRF token", "remote", r.RemoteAddr, "login", ss.login, "path", r.URL.Path)
		s.render(w, http.StatusForbidden, "erreur", page{Title: "Formulaire refusé", CSRF: ss.csrf, Login: ss.login, Tech: ss.technician, Message: "Ce formulaire n'est plus valable. Rechargez la page et recommencez."})
		return false
	}
	return true
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// The login form carries a token bound to a cookie (double submit): a
// page from elsewhere cannot log the browser in to a session of its own.
const preCookie = "sesam_pre"

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.loginForm(w, r, http.StatusOK, "")
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request, code int, msg string) {
	t := token()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: t, Path: "/connexion", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	s.render(w, code, "connexion", page{Title: "Connexion", CSRF: t, Message: msg})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	pre, err := r.Cookie(preCookie)
	if err != nil || r.ParseForm() != nil || !sameToken(r.PostFormValue("csrf"), pre.Value) {
		s.loginForm(w, r, http.StatusForbidden, "Ce formulaire n'est plus valable : recommencez.")
		return
	}
	user, pass := r.PostFormValue("identifiant"), r.PostFormValue("mot_de_passe")
	remote := addr(r)
	log := s.o.Log.With("remote", r.RemoteAddr, "login", auth.LogName(user))
	at, ok := s.o.Throttle.Begin(remote, user)
	if !ok {
		log.Warn("web login refused unchecked: too many failed logins")
		s.loginForm(w, r, http.StatusTooManyRequests, "Trop d'essais manqués depuis cet appareil : attendez quelques minutes avant de réessayer, ou demandez le mot de passe à votre technicien.")
		return
	}
	account, known := s.o.AccountOf[user]
	good, err := s.o.Logins.Check(user, pass)
	if err != nil {
		at.Cancel()
		s.loginForm(w, r, http.StatusServiceUnavailable, "Le relais est occupé : réessayez dans un instant.")
		return
	}
	if !good || !known {
		wait, _ := at.Fail()
		time.Sleep(wait)
		log.Warn("web login failed")
		s.loginForm(w, r, http.StatusUnauthorized, "Identifiant ou mot de passe incorrect.")
		return
	}
	at.Succeed()
	id := token()
	now := time.Now()
	s.mu.Lock()
	for k, v := range s.sessions { // expired ones first; then, full, the oldest
		if now.Sub(v.created) > sessionLife || now.Sub(v.seen) > idleLife {
			delete(s.sessions, k)
		}
	}
	for len(s.sessions) >= maxSessions {
		var oldest string
		for k, v := range s.sessions {
			if oldest == "" || v.seen.Before(s.sessions[oldest].seen) {
				oldest = k
			}
		}
		delete(s.sessions, oldest)
	}
	s.sessions[id] = &session{login: user, account: account, csrf: token(), technician: s.o.Technicians[user], created: now, seen: now}
	s.mu.Unlock()
	log.Info("web login", "account", account)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: "", Path: "/connexion", MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, ss *session) {
	if c, err := r.Cookie(cookieName); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/connexion", http.StatusSeeOther)
}

func addr(r *http.Request) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return a
}

func (s *Server) render(w http.ResponseWriter, code int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := pages.ExecuteTemplate(w, name, p); err != nil {
		s.o.Log.Warn("web page", "page", name, "error", err)
	}
}
