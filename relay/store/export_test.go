package store

// Commits reports how many transactions the committer has run.
func (s *Store) Commits() int64 { return s.commits.Load() }

// SchemaV1 is the schema an installed relay of version 1 holds.
const SchemaV1 = schema + "PRAGMA user_version = 1;"
