package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// readOnly are the requests answered from the store when the daemon is
// down: what a technician needs to see while it does not run.
var readOnly = map[string]bool{"status": true, "queue": true, "show": true, "mail": true, "mail-show": true, "lots": true}

// Ask sends a request to the daemon. A read-only one falls back to reading
// the store when the daemon is down (running is then false), so `status`,
// `queue`, `mail` and `lots` work while it does not run.
func Ask(cfg *config.Config, req Request, out any) (running bool, err error) {
	err = Call(cfg.Listen.Control, req, out)
	if !errors.Is(err, ErrDaemonDown) || !readOnly[req.Cmd] {
		return err == nil, err
	}
	// With the keys where this user may read them (root, the service
	// user, a plain key file): else sealed fields read as such.
	st, oerr := store.OpenReadOnly(cfg.StateDir)
	if k, _, kerr := keys.Find(cfg.StoreKey); kerr == nil {
		if oerr == nil {
			st.Close()
		}
		st, oerr = store.OpenReadOnlySealed(cfg.StateDir, k)
	}
	if oerr != nil {
		if _, serr := os.ReadDir(cfg.StateDir); errors.Is(serr, fs.ErrPermission) {
			oerr = fmt.Errorf("this user may not read %s: add it to group sesam-relay (adduser USER sesam-relay, then log in again), or run as root", cfg.StateDir)
		}
		return false, fmt.Errorf("%v, and the store cannot be read: %v", err, oerr)
	}
	defer st.Close()
	h := &Handler{Store: st, Config: cfg}
	data, err := h.Handle(context.Background(), req, Local())
	if err != nil || out == nil {
		return false, err
	}
	// Through JSON, as from the daemon: both paths give the same reply.
	b, err := json.Marshal(data)
	if err != nil {
		return false, err
	}
	return false, json.Unmarshal(b, out)
}
