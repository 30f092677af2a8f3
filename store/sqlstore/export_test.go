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
