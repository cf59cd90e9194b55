package store_test

import (
	"testing"
)

// BenchmarkSerialDurableWrite is one waited-for transition at a time: the
// floor under one delivery worker's per-mail cost.
func BenchmarkSerialDurableWrite(b *testing.B) {
	s := open(&testing.T{}, b.TempDir())
	defer s.Close()
	ids := make([]int64, b.N)
	for i := range ids {
		ids[i], _ = enqueue(s, env("dupont"), make([]byte, 20<<10))
	}
	b.ResetTimer()
	for _, id := range ids {
		if err := s.MarkSending(ctx, id); err != nil {
			b.Fatal(err)
		}
		s.MarkSentAsync(id, "250 ok")
	}
}

func BenchmarkBodyRead(b *testing.B) {
	s := open(&testing.T{}, b.TempDir())
	defer s.Close()
	id, _ := enqueue(s, env("dupont"), make([]byte, 20<<10))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Body(id)
	}
}
