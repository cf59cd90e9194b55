package control

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/deliver"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
)

// ServiceUser is the user the packaged unit runs the daemon as.
const ServiceUser = "sesam-relay"

// Check proves what the config promises, account by account: every login's
// hash is real, every password file can be read by the service user (all
// on this box, before any connection), then each provider login is tried
// once (SMTP, and IMAP where collected). An account that fails on this
// box is not tried at the provider: a local mistake must not cost a
// refused login there. It reports whether all is well.
func Check(cfg *config.Config, w io.Writer) bool {
	fmt.Fprintf(w, "config: read (%s, state_dir %s)\n", plural(len(cfg.Accounts), "account"), cfg.StateDir)
	if len(cfg.Accounts) == 0 {
		fmt.Fprintln(w, "no account yet: the relay runs but has nothing to relay; add an [[account]] (see the examples in the config)")
	}
	bad := 0
	for _, a := range cfg.Accounts {
		local := 0
		for _, l := range a.AllLogins() {
			if _, err := auth.Verify(l.PasswordHash, ""); err != nil {
				fmt.Fprintf(w, "%s: FAILED — login %s: %v\n", a.Name, l.Name, err)
				local++
			}
		}
		if a.Upstream.PasswordFile != "" {
			if err := passwordFileOK(a.Upstream); err != nil {
				fmt.Fprintf(w, "%s: FAILED — %v\n", a.Name, err)
				local++
			}
		}
		if local > 0 {
			fmt.Fprintf(w, "%s: the provider was not tried: fix the above first\n", a.Name)
			bad += local
			continue
		}
		NoticesTo(w, cfg, a)
		if err := deliver.TryLogin(a.Upstream, cfg.Hostname, 30*time.Second); err != nil {
			fmt.Fprintf(w, "%s: FAILED — %v\n", a.Name, err)
			bad++
		} else {
			if a.Upstream.Username == "" {
				fmt.Fprintf(w, "%s: OK — %s accepts mail from this relay without a login (no username set)\n", a.Name, a.Upstream.SMTP.String())
			} else {
				fmt.Fprintf(w, "%s: OK — logged in to %s as %s\n", a.Name, a.Upstream.SMTP.String(), a.Upstream.Username)
			}
		}
		if a.Upstream.IMAP.Addr == "" {
			continue
		}
		if err := fetch.TryLogin(a.Upstream, 30*time.Second); err != nil {
			fmt.Fprintf(w, "%s: IMAP FAILED — %v\n", a.Name, err)
			bad++
		} else {
			fmt.Fprintf(w, "%s: IMAP OK — logged in to %s as %s\n", a.Name, a.Upstream.IMAP.String(), a.Upstream.Username)
		}
	}
	if bad > 0 {
		fmt.Fprintf(w, "check: %s\n", plural(bad, "problem"))
		return false
	}
	fmt.Fprintln(w, "check: OK")
	return true
}

// passwordFileOK says whether the service will read the password file:
// readable by whoever runs check, not empty, and — when check runs as
// root, as installers do — readable by the service user too.
func passwordFileOK(p config.Provider) error {
	if _, err := p.Password(); err != nil {
		return err
	}
	if os.Geteuid() != 0 || p.PasswordSealed() {
		return nil // sealed: systemd gives it to the service
	}
	u, err := user.Lookup(ServiceUser)
	if err != nil {
		return nil // not installed as a package: nobody else to read it
	}
	return readableBy(p.PasswordFile, u)
}

// readableBy checks the mode bits of a file and of the folders above it
// for a user: what the kernel would let the service read.
func readableBy(path string, u *user.User) error {
	uid, _ := strconv.Atoi(u.Uid)
	gids := map[int]bool{}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			n, _ := strconv.Atoi(g)
			gids[n] = true
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	may := func(p string, want os.FileMode) (os.FileMode, int, int, bool) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, 0, 0, false
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		switch {
		case int(st.Uid) == uid:
			return mode, int(st.Uid), int(st.Gid), mode&(want<<6) != 0
		case gids[int(st.Gid)]:
			return mode, int(st.Uid), int(st.Gid), mode&(want<<3) != 0
		}
		return mode, int(st.Uid), int(st.Gid), mode&want != 0
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if mode, o, g, ok := may(dir, 1); !ok {
			return fmt.Errorf("password_file %s: user %s cannot enter %s (mode %04o, owner %d:%d): chgrp %s %s; chmod g+x %s",
				path, u.Username, dir, mode, o, g, ServiceUser, dir, dir)
		}
		if dir == "/" {
			break
		}
	}
	if mode, o, g, ok := may(abs, 4); !ok {
		return fmt.Errorf("password_file %s cannot be read by user %s (mode %04o, owner %d:%d): chgrp %s %s; chmod 0640 %s",
			path, u.Username, mode, o, g, ServiceUser, path, path)
	}
	return nil
}

// NoticesTo tells the installer where an account's French notices go, and
// says loudly when they would reach nobody.
func NoticesTo(w io.Writer, cfg *config.Config, a config.Account) {
	if to := a.NoticesGoTo(cfg.Sesam.WarnBillingLogin); to != "" {
		fmt.Fprintf(w, "%s: the practitioner's notices are %s\n", a.Name, to)
		return
	}
	fmt.Fprintf(w, "%s: WARNING — the practitioner's notices (rejected lots, missing acknowledgements) reach nobody: "+
		"remove `notify = []` or add a [[account.login]] with human = true\n", a.Name)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
