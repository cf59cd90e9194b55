package auth

// Hashed reports how many argon2 computations the checker has run.
func (c *Checker) Hashed() int64 { return c.hashed.Load() }
