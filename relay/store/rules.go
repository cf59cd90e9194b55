package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// rulesFingerprint names the rules the ledger is built with: this
// sesam-relay's own (sesam.RulesVersion) and the config's.
func (s *Store) rulesFingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sesam %d", sesam.RulesVersion)
	for _, r := range s.currentRules() {
		fmt.Fprintf(&b, "\n%s ~ %s = %s", r.Field, r.Pattern, r.Class)
	}
	return b.String()
}

// RebuildIfRulesChanged rebuilds the ledger when the rules that built it
// are not the ones in force (an upgrade, a changed [[sesam.rule]]): a lot
// acknowledged under older rules must not stay "safe" when the rules now
// read its ARL as negative. A rebuild gives no notice twice.
func (s *Store) RebuildIfRulesChanged(ctx context.Context) (rebuilt bool, lots, matched int, err error) {
	want := s.rulesFingerprint()
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
	err = s.writeWait(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec("INSERT INTO ledger_rules (id, fingerprint) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint", want)
		return err
	})
	return true, lots, matched, err
}
