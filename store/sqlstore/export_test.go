package sqlstore

import "github.com/pressly/goose/v3"

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

// HoldBatches takes every token batch flusher's slot, so that rows
// created meanwhile queue; the returned function gives the slots back and
// writes what queued. HoldAuditBatches does the same for audit events.
func (s *Store) HoldBatches() (release func())      { return hold(&s.batch) }
func (s *Store) HoldAuditBatches() (release func()) { return hold(&s.audits) }

func hold[T any](b *batcher[T]) func() {
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

// BatchQueued and AuditQueued report how many rows wait for a batch.
func (s *Store) BatchQueued() int { return queued(&s.batch) }
func (s *Store) AuditQueued() int { return queued(&s.audits) }

func queued[T any](b *batcher[T]) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Migrator is the store's own goose provider, for tests that migrate to
// a given version.
func (s *Store) Migrator() (*goose.Provider, error) { return s.migrator() }
