// Command sesam-relay is the practice's mail relay for SESAM-Vitale
// teletransmission: run `sesam-relay help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/daemon"
	"github.com/sesam-relay/sesam-relay/relay/demo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `sesam-relay — the practice's mail relay for SESAM-Vitale teletransmission

USAGE
  sesam-relay [--config FILE] COMMAND [ARGS] [--json]

COMMANDS
  serve                    run the daemon (systemd starts it)
  demo                     run the relay against a simulated provider, on this machine
  status                   listeners, each account's provider health, queue counts
  queue [--all] [--account NAME] [--page N]
                           mail waiting (with --all: also sent, bounced, dropped),
                           500 a page, the newest page first (in order of arrival
                           within it); the total is always said
  queue show ID            one mail and its whole history
  queue retry ID           try a deferred mail now
  queue hold ID [--reason TEXT]
                           keep a waiting mail from being sent
  queue release ID [--confirm]
                           send a held mail; an uncertain one (it may have reached the
                           provider already) needs --confirm: check the provider's sent
                           folder first, or the fund may get the lot twice; so does a
                           probable duplicate (the same lot sent again under another
                           Message-ID) while its first sending may have reached the fund
  queue drop ID            never send this mail (its bytes are kept)
  lots [ACCOUNT] [--since YYYY-MM-DD]
                           every lot: date, fund, emitter, invoices, state
                           (queued, delivered, acknowledged, rejected…), what came back
  lots show ID             one lot's whole story
  lots --rebuild           rebuild the ledger from the stored mail (after a rules change)
  fetch ACCOUNT            poll the account's provider IMAP now
  mail ACCOUNT             the account's local mailbox: id, from, subject, date, folder,
                           size, collected by which logins
  mail show ID [--raw]     one message's details (--raw: its bytes; returns hold
                           patient data: only on explicit request)
  mail restore ID --login L
                           make a message deleted by login L visible to it again
  import ACCOUNT FILE.eml...
                           put mail saved from the webmail in the local mailbox
                           (the same message twice is skipped)
  check                    validate the config and try each provider login (SMTP, IMAP) once
  reload                   make the daemon read the config again (systemctl reload runs it);
                           mail in flight is finished first; a bad config is refused and kept
  init                     create the store and the self-signed certificate if missing,
                           and print the certificate's fingerprint (the package runs it)
  keys seal                move the store key (every stored body is encrypted to it) from
                           its plain file into a systemd credential sealed to this machine
                           (its TPM2 where it has one); run as root (the package does)
  keys recovery --out FILE make the practice's recovery key: its private half to FILE (print
                           it or keep it on a USB stick, off the box); backups are encrypted to it
  backup [--to FILE]       a consistent, encrypted snapshot while the relay runs (default: into
                           [backup] folder, keeping the newest [backup] keep); run as root
  restore FILE --recovery-key KEY [--force]
                           on a fresh install, the relay stopped: bring back the queue, the
                           mailboxes, the views, the UIDLs and the ledger of a backup
  keys rotate              add a new store key for writing, keep the old ones for reading;
                           after a restart the stored mail is re-encrypted in the background
  account add NAME [--address A] [--phone LOGIN] [--provider P] [--smtp URL] [--imap URL]
                 [--username U] [--no-check]
                           a practitioner's account, in accounts.d/NAME.toml: asks for the
                           provider address and password and the billing software's password
                           (without a terminal, standard input gives, one per line, the
                           provider password, the billing software's, then the phone's);
                           fills in the provider's servers from the address's domain; tries
                           both provider logins once (a refused password writes nothing);
                           seals the password; reloads the relay; prints what to type into
                           the billing software; run as root
  account passwd NAME      the provider password changed (after an outage, the provider may
                           force it): tried, kept, and the waiting mail sent now
  account list             each account, its provider, logins, and how its password is kept
  account remove NAME      set its file aside and destroy its provider password; its waiting
                           mail is held, never dropped
  secret set ACCOUNT       the account's provider password (asked for, or on standard input),
                           sealed as a systemd credential to this machine where it can be
                           (else written to password_file, mode 0600); restarts the service
                           so that it reads it; run as root
  passwd                   read a password (prompt, or standard input) and print
                           its hash for password_hash
  version                  print the version
  help                     this text (also --help)

OPTIONS
  --config FILE  the configuration (default /etc/sesam-relay/config.toml)
  --json         machine-readable output (every command that prints)

EXIT STATUS
  0 success; 1 failure; 2 bad usage; 3 status: the daemon is not running.

FILES
  /etc/sesam-relay/config.toml   configuration (see the README for every key)
  /var/lib/sesam-relay/          the queue (state_dir); only the daemon writes it
  /run/sesam-relay/control.sock  control socket (group sesam-relay)
`

type opts struct {
	config  string
	json    bool
	all     bool
	raw     bool
	account string
	reason  string
	login   string
	since   string
	rebuild bool
	confirm bool
	page    int
	to, out string // backup --to, keys recovery --out
	force   bool   // restore over a store that holds mail
	// recoveryKey is restore's --recovery-key.
	recoveryKey string
	acct        control.AccountOpts // account's flags
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o opts
	fs := flag.NewFlagSet("sesam-relay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.config, "config", config.DefaultPath, "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.BoolVar(&o.all, "all", false, "")
	fs.StringVar(&o.account, "account", "", "")
	fs.StringVar(&o.reason, "reason", "", "")
	fs.StringVar(&o.login, "login", "", "")
	fs.BoolVar(&o.raw, "raw", false, "")
	fs.StringVar(&o.since, "since", "", "")
	fs.BoolVar(&o.rebuild, "rebuild", false, "")
	fs.BoolVar(&o.confirm, "confirm", false, "")
	fs.IntVar(&o.page, "page", 1, "")
	fs.StringVar(&o.to, "to", "", "")
	fs.StringVar(&o.out, "out", "", "")
	fs.StringVar(&o.recoveryKey, "recovery-key", "", "")
	fs.BoolVar(&o.force, "force", false, "")
	fs.StringVar(&o.acct.Address, "address", "", "")
	fs.StringVar(&o.acct.Provider, "provider", "", "")
	fs.StringVar(&o.acct.SMTP, "smtp", "", "")
	fs.StringVar(&o.acct.IMAP, "imap", "", "")
	fs.StringVar(&o.acct.Username, "username", "", "")
	fs.StringVar(&o.acct.Phone, "phone", "", "")
	fs.BoolVar(&o.acct.NoCheck, "no-check", false, "")
	fs.BoolVar(&o.acct.Insecure, "insecure", false, "")
	// Flags may stand anywhere: "queue show 5 --json" as well as "--json queue show 5".
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) { // -h, --help: asked for, so on stdout
				fmt.Fprint(stdout, usage)
				return 0
			}
			fmt.Fprintf(stderr, "sesam-relay: %v\n\n%s", err, usage)
			return 2
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	if o.page < 1 {
		fmt.Fprintf(stderr, "sesam-relay: --page %d: pages count from 1\n", o.page)
		return 2
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if noArgs[pos[0]] && len(pos) > 1 {
		fmt.Fprintf(stderr, "sesam-relay %s takes no argument (got %q)\n", pos[0], strings.Join(pos[1:], " "))
		return 2
	}
	fail := func(err error) int {
		// Under systemd (`systemctl reload` runs `reload`), an error line
		// carries its priority, so that `journalctl -p err` shows it.
		prio := ""
		if os.Getenv("JOURNAL_STREAM") != "" {
			prio = "<3>"
		}
		fmt.Fprintf(stderr, "%ssesam-relay %s: %v\n", prio, pos[0], err)
		return 1
	}
	switch pos[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version":
		if o.json {
			control.PrintJSON(stdout, map[string]string{"version": version})
		} else {
			fmt.Fprintln(stdout, "sesam-relay", version)
		}
		return 0
	case "passwd":
		return control.Passwd(stdin, stdout, stderr, o.json)
	case "demo":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := demo.Run(ctx, stdin, stdout); err != nil {
			return fail(err)
		}
		return 0
	}
	if !commands[pos[0]] {
		// Named before any config is read: a typo is not a config error.
		fmt.Fprintf(stderr, "sesam-relay: unknown command %q\n\n%s", pos[0], usage)
		return 2
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		if pos[0] == "reload" {
			// The daemon is not even asked: it keeps the config it runs.
			return fail(fmt.Errorf("%w; nothing was reloaded: the running config is kept", err))
		}
		return fail(err)
	}
	switch pos[0] {
	case "serve":
		log := daemon.NewLogger(stderr)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		reload := make(chan struct{}, 1)
		go func() {
			for range hup {
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending: it will read the newest file
				}
			}
		}()
		load := func() (*config.Config, error) { return config.Load(o.config) }
		if err := daemon.Run(ctx, cfg, log, reload, load); err != nil {
			log.Error("sesam-relay stopped", "error", err.Error())
			return 1
		}
		return 0
	case "keys":
		if len(pos) == 2 && pos[1] == "recovery" {
			return control.KeysRecovery(cfg, o.out, o.force, stdout, stderr)
		}
		return control.Keys(cfg, pos[1:], o.json, stdout, stderr)
	case "secret":
		return control.Secret(cfg, pos[1:], o.json, stdin, stdout, stderr)
	case "account":
		o.acct.Config, o.acct.JSON = o.config, o.json
		return control.Account(cfg, pos[1:], o.acct, stdin, stdout, stderr)
	case "backup":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, "sesam-relay backup: usage: backup [--to FILE]")
			return 2
		}
		return control.Backup(cfg, o.to, version, o.json, stdout, stderr)
	case "restore":
		if len(pos) != 2 {
			fmt.Fprintln(stderr, "sesam-relay restore: usage: restore FILE --recovery-key KEY [--force]")
			return 2
		}
		return control.Restore(cfg, pos[1], o.recoveryKey, o.force, o.json, stdout, stderr)
	case "check":
		var ok bool
		if o.json {
			var report strings.Builder
			ok = control.Check(cfg, &report)
			control.PrintJSON(stdout, map[string]any{"ok": ok, "report": strings.Split(strings.TrimSuffix(report.String(), "\n"), "\n")})
		} else {
			ok = control.Check(cfg, stdout) // line by line: a provider login can take its timeout
		}
		if !ok {
			return 1
		}
		return 0
	case "init":
		return initState(cfg, stdout, stderr)
	case "reload":
		var out map[string]bool
		if _, err := call(cfg, control.Request{Cmd: "reload"}, &out); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "config reloaded")
		return 0
	case "status":
		return status(cfg, o, stdout, stderr)
	case "queue":
		return queue(cfg, o, pos[1:], stdout, stderr)
	case "mail":
		return mailCmd(cfg, o, pos[1:], stdout, stderr)
	case "lots":
		return lotsCmd(cfg, o, pos[1:], stdout, stderr)
	case "fetch", "import":
		return inbound(cfg, o, pos[0], pos[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sesam-relay: unknown command %q\n\n%s", pos[0], usage)
	return 2
}

// commands are the commands that read the config.
// noArgs are the commands that take no argument: a stray one is refused,
// not silently ignored.
var noArgs = map[string]bool{"help": true, "version": true, "passwd": true, "demo": true, "serve": true, "check": true,
	"init": true, "reload": true, "status": true}

var commands = map[string]bool{"account": true, "keys": true, "secret": true, "backup": true, "restore": true, "serve": true, "check": true, "init": true, "reload": true, "status": true,
	"queue": true, "mail": true, "lots": true, "fetch": true, "import": true}

// call asks the daemon (see control.Ask).
func call(cfg *config.Config, req control.Request, out any) (running bool, err error) {
	return control.Ask(cfg, req, out)
}

func status(cfg *config.Config, o opts, stdout, stderr io.Writer) int {
	var st control.Status
	if _, err := call(cfg, control.Request{Cmd: "status"}, &st); err != nil {
		fmt.Fprintf(stderr, "sesam-relay status: %v\n", err)
		return 1
	}
	if o.json {
		control.PrintJSON(stdout, st)
	} else {
		control.PrintStatus(stdout, st)
		if len(st.Accounts) == 0 {
			fmt.Fprintf(stdout, "\nno account configured yet: nothing to relay. Add an [[account]] to %s\n"+
				"(its examples show how), run `sesam-relay check`, then `systemctl reload sesam-relay`.\n", o.config)
		}
	}
	if !st.Running {
		return 3
	}
	return 0
}

func queue(cfg *config.Config, o opts, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		var p control.QueuePage
		running, err := call(cfg, control.Request{Cmd: "queue", All: o.all, Account: o.account, Page: o.page}, &p)
		if err != nil {
			fmt.Fprintf(stderr, "sesam-relay queue: %v\n", err)
			return 1
		}
		if o.json {
			control.PrintJSON(stdout, p)
		} else {
			control.PrintQueue(stdout, p, running, o.all, queueFlags(o))
		}
		return 0
	}
	if len(args) != 2 {
		fmt.Fprintf(stderr, "sesam-relay queue: give an action and an id, e.g. `queue show 12`\n")
		return 2
	}
	id, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		fmt.Fprintf(stderr, "sesam-relay queue: %q is not a message id (see `sesam-relay queue`)\n", args[1])
		return 2
	}
	switch args[0] {
	case "show":
		var sh control.Show
		if _, err := call(cfg, control.Request{Cmd: "show", ID: id}, &sh); err != nil {
			fmt.Fprintf(stderr, "sesam-relay queue show: %v\n", err)
			return 1
		}
		if o.json {
			control.PrintJSON(stdout, sh)
		} else {
			control.PrintShow(stdout, sh)
		}
		return 0
	case "retry", "hold", "release", "drop":
		if _, err := call(cfg, control.Request{Cmd: args[0], ID: id, Reason: o.reason, Confirm: o.confirm}, nil); err != nil {
			fmt.Fprintf(stderr, "sesam-relay queue %s: %v\n", args[0], err)
			return 1
		}
		if o.json {
			control.PrintJSON(stdout, map[string]any{"ok": true, "id": id, "action": args[0]})
		} else {
			fmt.Fprintf(stdout, "message %d: %s done\n", id, args[0])
		}
		return 0
	}
	fmt.Fprintf(stderr, "sesam-relay queue: unknown action %q (show, retry, hold, release, drop)\n", args[0])
	return 2
}

// initState prepares state_dir before the first start (daemon.Init).
func initState(cfg *config.Config, stdout, stderr io.Writer) int {
	if err := daemon.Init(cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "sesam-relay init: %v\n", err)
		return 1
	}
	for _, a := range cfg.Accounts {
		control.NoticesTo(stdout, cfg, a)
	}
	return 0
}

func queueFlags(o opts) string {
	f := ""
	if o.all {
		f += " --all"
	}
	if o.account != "" {
		f += " --account " + o.account
	}
	return f
}
