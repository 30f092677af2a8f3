package sqlstore

import (
	"context"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/twofold-idp/twofold/store"
)

// Group commit for the rows that token requests create on their own,
// outside any transaction (client_credentials above all): on PostgreSQL
// every such INSERT is a round trip and a commit that flushes the WAL.
// Rows that arrive while a batch is being written wait and go together
// in the next one: one statement and one commit for many tokens, while
// each caller still returns only once its own row is committed. Nothing
// waits for company: a lone row is written at once, by its caller.
const (
	batchFlushers = 4   // batches in flight at once
	batchMaxRows  = 128 // rows per statement
)

type pendingRow struct {
	r    store.OAuth2Request
	done chan error // buffered: the flusher never blocks on a caller
}

type rowBatcher struct {
	s        *Store
	mu       sync.Mutex
	queue    []*pendingRow
	flushing int
}

// add writes r, alone or with others, and returns when it is committed.
func (b *rowBatcher) add(ctx context.Context, r store.OAuth2Request) error {
	p := &pendingRow{r: r, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	lead := b.flushing < batchFlushers
	if lead {
		b.flushing++
	}
	b.mu.Unlock()
	if lead {
		// The caller writes what is queued, its own row included, then
		// hands anything that arrived meanwhile to a goroutine.
		b.flushOnce()
		b.release()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// Like any statement cancelled in flight, the row may still land.
		return ctx.Err()
	}
}

// flushOnce writes up to batchMaxRows queued rows; false when none was.
func (b *rowBatcher) flushOnce() bool {
	b.mu.Lock()
	n := min(len(b.queue), batchMaxRows)
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.mu.Unlock()
	if n == 0 {
		return false
	}
	// The rows belong to several requests, none of whose cancellation
	// should undo the others': the batch has its own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n == 1 {
		batch[0].done <- b.s.insertOAuth2Request(ctx, batch[0].r)
		return true
	}
	if err := b.s.insertOAuth2Requests(ctx, batch); err != nil {
		// One bad row must not fail the others: each on its own, so
		// every caller gets its own answer.
		for _, p := range batch {
			p.done <- b.s.insertOAuth2Request(ctx, p.r)
		}
		return true
	}
	for _, p := range batch {
		p.done <- nil
	}
	return true
}

// release gives up a flusher's slot, or keeps it in a goroutine while
// rows wait, so none is left behind when arrivals stop.
func (b *rowBatcher) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.flushing--
		return
	}
	go b.drain()
}

// drain writes batches until none is queued, then releases its slot.
func (b *rowBatcher) drain() {
	for b.flushOnce() {
	}
	b.release()
}

// insertOAuth2Requests writes many rows in one statement: PostgreSQL's
// unnest over one array per column, so the query text (and its prepared
// statement) is the same whatever the count.
func (s *Store) insertOAuth2Requests(ctx context.Context, batch []*pendingRow) error {
	n := len(batch)
	var (
		kind, sig, reqID, client, subject, data = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		active                                  = make([]bool, n)
		requested, expires                      = make([]string, n), make([]string, n)
	)
	for i, p := range batch {
		r := p.r
		kind[i], sig[i], reqID[i], client[i], subject[i], data[i] = r.Kind, r.Signature, r.RequestID, r.ClientID, r.Subject, r.Data
		active[i] = r.Active
		requested[i], expires[i] = r.RequestedAt.UTC().Format(time.RFC3339Nano), r.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	_, err := s.exec(ctx, `INSERT INTO oauth2_requests (`+oauth2Columns+`)
SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::boolean[], ?::timestamptz[], ?::timestamptz[], ?::text[])`,
		pq.Array(kind), pq.Array(sig), pq.Array(reqID), pq.Array(client), pq.Array(subject),
		pq.Array(active), pq.Array(requested), pq.Array(expires), pq.Array(data))
	return wrap(err, "create tokens")
}
