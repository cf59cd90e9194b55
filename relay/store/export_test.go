package store

// Commits reports how many transactions the committer has run.
func (s *Store) Commits() int64 { return s.commits.Load() }
