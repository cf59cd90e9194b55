package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// rulesFingerprint names the rules a ledger is built with: this
// sesam-relay's own (sesam.RulesVersion) and the config's.
func rulesFingerprint(rules []sesam.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sesam %d", sesam.RulesVersion)
	for _, r := range rules {
		fmt.Fprintf(&b, "\n%s ~ %s = %s", r.Field, r.Pattern, r.Class)
	}
	return b.String()
}

// RebuildIfRulesChanged rebuilds the ledger when the rules that built it
// are not the ones in force (an upgrade, a changed [[sesam.rule]]): a lot
// acknowledged under older rules must not stay "safe" when the rules now
// read its ARL as negative. A rebuild gives no notice twice. The rebuild
// records the rules in its last write only (see RebuildLedger), so one
// stopped half-way is done again at the next start.
func (s *Store) RebuildIfRulesChanged(ctx context.Context) (rebuilt bool, lots, matched int, err error) {
	want := rulesFingerprint(s.currentRules())
	var have string
	switch err := s.r.QueryRow("SELECT fingerprint FROM ledger_rules WHERE id = 1").Scan(&have); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, 0, 0, err
	}
	if have == want {
		return false, 0, 0, nil
	}
	if lots, matched, err = s.RebuildLedger(ctx); err != nil {
		return false, 0, 0, err
	}
	return true, lots, matched, nil
}
