#!/usr/bin/env bash
# Makes this folder's fixture: a store written in clear by sesam-relay 0.1.0
# (commit 6939b19, the first package), and what 0.1.0 itself showed of it:
# each login's POP3 UIDLs (poplib), the queue, the mailbox and the lots.
# TestA010StoreUpgradesUnchanged starts today's relay on a copy and compares.
# Run from the repository's root: bash relay/e2e/testdata/store-0.1.0/make.sh
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
mail=$(cd "$out/../../../../testdata/mail" && pwd)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; git worktree remove --force "$work/src" 2>/dev/null || true; rm -rf "$work"' EXIT
git worktree add -f -q "$work/src" 6939b19
(cd "$work/src" && CGO_ENABLED=0 go build -o "$work/sesam-relay" ./cmd/sesam-relay)
bin="$work/sesam-relay"
hash=$(printf 'secret-local\n' | "$bin" passwd)
printf 'provider-pw' >"$work/pw"
cat >"$work/config.toml" <<CFG
hostname = "relais.test"
state_dir = "$work/state"
[listen]
smtp = ["127.0.0.1:21587"]
smtps = []
pop3 = ["127.0.0.1:21110"]
pop3s = []
control = "$work/control.sock"
allow = ["127.0.0.1/32"]
[[account]]
name = "dupont"
password_hash = "$hash"
address = "jean.dupont@laposte.net"
  [account.upstream]
  smtp = "smtp://127.0.0.1:1"
  username = "jean.dupont"
  password_file = "$work/pw"
  insecure = true
  [[account.login]]
  name = "dupont-mobile"
  password_hash = "$hash"
  human = true
CFG
r() { "$bin" --config "$work/config.toml" "$@"; }
r serve >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 50); do [ -S "$work/control.sock" ] && break; sleep 0.1; done
# Two lots (one encrypted, waiting for the unreachable provider; one in
# clear, held by the guard), then the returns saved from the webmail.
python3 - "$mail" <<'PY'
import smtplib, sys
for name in ("lot-smime.eml", "lot-clear.eml"):
    s = smtplib.SMTP("127.0.0.1", 21587, timeout=30)
    s.starttls(); s.login("dupont", "secret-local")
    s.sendmail("jean.dupont@laposte.net", ["01422@422.01.rss.fr"], open(sys.argv[1] + "/" + name, "rb").read())
    s.quit()
PY
[ -S "$work/control.sock" ] || { cat "$work/log" >&2; exit 1; }
r import dupont "$mail/arl-positive.eml" "$mail/noemie-reject.eml" "$mail/noemie-payment-gz.eml" "$mail/provider-notice.eml" >/dev/null
# The billing software takes and deletes the first two; the phone keeps all.
python3 - <<'PY'
import poplib
p = poplib.POP3("127.0.0.1", 21110, timeout=30)
p.stls(); p.user("dupont"); p.pass_("secret-local")
for n in (1, 2):
    p.retr(n); p.dele(n)
p.quit()
PY
for login in dupont dupont-mobile; do
  LOGIN=$login python3 - >"$out/uidl-$login.txt" <<'PY'
import poplib, os
p = poplib.POP3("127.0.0.1", 21110, timeout=30)
p.stls(); p.user(os.environ["LOGIN"]); p.pass_("secret-local")
for l in p.uidl()[1]: print(l.decode())
p.quit()
PY
done
r queue --all --json >"$out/queue.json"
r mail dupont --json >"$out/mail.json"
r lots --json >"$out/lots.json"
kill -TERM $pid
wait $pid || true
# As 0.1.0 left them: the database and its write-ahead log.
cp "$work/state/sesam-relay.db" "$out/sesam-relay.db"
cp "$work/state/sesam-relay.db-wal" "$out/sesam-relay.db-wal"
echo "written: $(ls "$out")"
