package control

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// LevelNotice is syslog's "notice" (normal but significant): the level of
// a technician's action in the journal.
const LevelNotice = slog.Level(2)

// Caller is who sent a request on the control socket, from the kernel
// (SO_PEERCRED): no client can claim to be someone else.
type Caller struct {
	UID  int    `json:"uid"` // -1: not known
	Name string `json:"name,omitempty"`
}

// Local is the CLI's own process, reading the store with the daemon down.
func Local() Caller { return callerOf(syscall.Getuid()) }

func callerOf(uid int) Caller {
	c := Caller{UID: uid}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		c.Name = u.Username
	}
	return c
}

func (c Caller) String() string {
	switch {
	case c.UID < 0:
		return "an unknown caller"
	case c.Name != "":
		return fmt.Sprintf("uid %d (%s)", c.UID, c.Name)
	}
	return fmt.Sprintf("uid %d", c.UID)
}

// peer returns who is at the other end of a Unix socket connection.
func peer(c net.Conn) Caller {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Caller{UID: -1}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{UID: -1}
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return Caller{UID: -1}
	}
	return callerOf(int(cred.Uid))
}

// audited are the commands that change state or show a mail's content.
func audited(req Request) bool {
	switch req.Cmd {
	case "retry", "hold", "release", "drop", "fetch", "import", "mail-restore", "reload", "lots-rebuild", "account-retry":
		return true
	case "mail-show":
		return req.All // the raw bytes: health data
	}
	return false
}

// Action is one audited request, as status shows it.
type Action struct {
	At     time.Time `json:"at"`
	Caller Caller    `json:"caller"`
	Cmd    string    `json:"cmd"`
	IDs    []int64   `json:"ids,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// Actions keeps the last technician actions since the daemon started, for
// status; the journal keeps them all.
type Actions struct {
	mu   sync.Mutex
	last []Action
}

const keptActions = 10

func (a *Actions) add(x Action) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = append(a.last, x)
	if len(a.last) > keptActions {
		a.last = a.last[len(a.last)-keptActions:]
	}
}

// List returns the kept actions, oldest first.
func (a *Actions) List() []Action {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Action(nil), a.last...)
}

// audit writes one journal line at notice level for an audited request,
// with the caller's uid and the ids it touched, and keeps it for status.
func (h *Handler) audit(req Request, caller Caller, ids []int64, err error) {
	if !audited(req) {
		return
	}
	x := Action{At: time.Now(), Caller: caller, Cmd: req.Cmd, IDs: ids}
	attrs := []any{"cmd", req.Cmd, "caller_uid", caller.UID, "caller", caller.Name}
	if len(ids) > 0 {
		attrs = append(attrs, "ids", ids)
	}
	if req.Account != "" {
		attrs = append(attrs, "account", req.Account)
	}
	if req.Login != "" {
		attrs = append(attrs, "login", req.Login)
	}
	if err != nil {
		x.Error = err.Error()
		attrs = append(attrs, "error", err.Error())
	}
	if h.Log != nil {
		h.Log.Log(context.Background(), LevelNotice, "technician action", attrs...)
	}
	if h.Live != nil {
		h.Live.Actions.add(x)
	}
}
