package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// openStore opens the store with the appliance's keys. A store that holds
// no sealed body yet and finds no key gets a new one (what `init` makes);
// a store that has sealed bodies and no key, or not the right one, is not
// opened at all: the daemon says which key and where it looked, and
// touches nothing.
func openStore(cfg *config.Config, log *slog.Logger) (*store.Store, keys.Source, error) {
	k, src, err := keys.Find(cfg.StoreKey)
	switch {
	case errors.Is(err, keys.ErrNone):
		probe, perr := store.Open(cfg.StateDir)
		if perr != nil {
			return nil, src, fmt.Errorf("%v; %w", err, perr) // sealed bodies and no key: the key was lost or not given
		}
		probe.Close()
		e, kerr := keys.New(cfg.Hostname)
		if kerr != nil {
			return nil, src, kerr
		}
		if kerr := keys.Save(cfg.StoreKey, openpgp.EntityList{e}); kerr != nil {
			return nil, src, fmt.Errorf("the store has no key yet and one could not be made: %w", kerr)
		}
		if log != nil {
			log.Warn("made the store key: every body is sealed to it; keep a backup of it, or the store cannot be read without it", "key", cfg.StoreKey, "key_id", store.KeyName(e))
		}
		k = &store.Keys{Write: e, Read: openpgp.EntityList{e}}
	case err != nil:
		return nil, src, err
	}
	st, err := store.OpenSealed(cfg.StateDir, k)
	if err != nil {
		return nil, src, fmt.Errorf("%w (keys read from %s)", err, src)
	}
	return st, src, nil
}

// sealOlderBodies seals to the current key, in the background, what an
// older version stored in clear and what an older key sealed (after `keys
// rotate`); a kill leaves the rest for the next start.
func sealOlderBodies(ctx context.Context, st *store.Store, log *slog.Logger) {
	n, fields, damaged, err := st.Reseal(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error("encrypting the stored bodies to the current key", "sealed", n, "fields", fields, "error", err.Error())
	case n > 0 || fields > 0:
		log.Info("stored bodies are now encrypted to the current store key", "sealed", n, "fields", fields)
	}
	if damaged > 0 {
		log.Error("stored bodies that do not open were left as they are: `sesam-relay mail show ID --raw` names each", "damaged", damaged)
	}
}
