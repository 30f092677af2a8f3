package sqlstore

// SetDeleteBatch shrinks the clean-up batch for a test; the returned
// function restores it.
func SetDeleteBatch(n int) (restore func()) {
	old := deleteBatch
	deleteBatch = n
	return func() { deleteBatch = old }
}

var WithBinaryParameters = withBinaryParameters

var TakeStatementCache = takeStatementCache

// Prepared reports how many statements the store keeps prepared.
func (s *Store) Prepared() int {
	s.stmts.mu.RLock()
	defer s.stmts.mu.RUnlock()
	return len(s.stmts.m)
}

// HoldBatches takes every batch flusher's slot, so that rows created
// meanwhile queue; the returned function gives the slots back and writes
// what queued.
func (s *Store) HoldBatches() (release func()) {
	b := &s.batch
	b.mu.Lock()
	b.flushing += batchFlushers
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.flushing -= batchFlushers - 1 // keep one slot for this flush
		b.mu.Unlock()
		b.drain()
	}
}

// BatchQueued reports how many rows wait for a batch.
func (s *Store) BatchQueued() int {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	return len(s.batch.queue)
}
