package sqlstore

import (
	"context"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/twofold-idp/twofold/store"
)

// Group commit for the rows that requests create on their own, outside
// any transaction (tokens for client_credentials above all, audit events):
// on PostgreSQL every such INSERT is a round trip and a commit that
// flushes the WAL. Rows that arrive while a batch is being written wait
// and go together in the next one: one statement and one commit for
// many rows, while each caller still returns only once its own row is
// committed. Nothing waits for company: a lone row is written at once,
// by its caller.
const (
	batchFlushers = 4   // batches in flight at once
	batchMaxRows  = 128 // rows per statement
)

// pending is one caller's rows: written together or not at all.
type pending[T any] struct {
	rows []T
	done chan error // buffered: the flusher never blocks on a caller
}

// batcher groups the rows of one table: one writes a row alone, many
// writes several in one statement.
type batcher[T any] struct {
	one      func(ctx context.Context, r T) error
	many     func(ctx context.Context, rows []T) error
	mu       sync.Mutex
	queue    []*pending[T]
	flushing int
}

// add writes rows (one caller's, all or none), alone or with other
// callers' rows, and returns when they are committed.
func (b *batcher[T]) add(ctx context.Context, rows ...T) error {
	p := &pending[T]{rows: rows, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	lead := b.flushing < batchFlushers
	if lead {
		b.flushing++
	}
	b.mu.Unlock()
	if lead {
		// The caller writes what is queued, its own rows included, then
		// hands anything that arrived meanwhile to a goroutine.
		b.flushOnce()
		b.release()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// Like any statement cancelled in flight, the rows may still land.
		return ctx.Err()
	}
}

// flushOnce writes the queued callers' rows, up to about batchMaxRows
// (a caller's rows are never split); false when none was queued.
func (b *batcher[T]) flushOnce() bool {
	b.mu.Lock()
	n, rowCount := 0, 0
	for n < len(b.queue) && (n == 0 || rowCount+len(b.queue[n].rows) <= batchMaxRows) {
		rowCount += len(b.queue[n].rows)
		n++
	}
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	if len(b.queue) == 0 {
		b.queue = nil // let the written rows go
	}
	b.mu.Unlock()
	if n == 0 {
		return false
	}
	// The rows belong to several requests, none of whose cancellation
	// should undo the others': the batch has its own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n == 1 {
		batch[0].done <- b.write(ctx, batch[0].rows)
		return true
	}
	rows := make([]T, 0, rowCount)
	for _, p := range batch {
		rows = append(rows, p.rows...)
	}
	if err := b.many(ctx, rows); err != nil {
		// One bad caller must not fail the others: each on its own, so
		// every caller gets its own answer.
		for _, p := range batch {
			p.done <- b.write(ctx, p.rows)
		}
		return true
	}
	for _, p := range batch {
		p.done <- nil
	}
	return true
}

// write writes one caller's rows in one statement.
func (b *batcher[T]) write(ctx context.Context, rows []T) error {
	if len(rows) == 1 {
		return b.one(ctx, rows[0])
	}
	return b.many(ctx, rows)
}

// release gives up a flusher's slot, or keeps it in a goroutine while
// rows wait, so none is left behind when arrivals stop.
func (b *batcher[T]) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.flushing--
		return
	}
	go b.drain()
}

// drain writes batches until none is queued, then releases its slot.
func (b *batcher[T]) drain() {
	for b.flushOnce() {
	}
	b.release()
}

// insertOAuth2Requests writes many rows in one statement: PostgreSQL's
// unnest over one array per column, so the query text (and its prepared
// statement) is the same whatever the count.
func (s *Store) insertOAuth2Requests(ctx context.Context, batch []store.OAuth2Request) error {
	n := len(batch)
	var (
		kind, sig, reqID, client, subject, data = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		active                                  = make([]bool, n)
		requested, expires                      = make([]string, n), make([]string, n)
	)
	for i, r := range batch {
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

// insertAuditEvents writes many events in one statement, in order.
func (s *Store) insertAuditEvents(ctx context.Context, batch []store.AuditEvent) error {
	n := len(batch)
	at := make([]string, n)
	typ, user, actor, client, ip, agent, detail := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range batch {
		at[i] = e.Time.UTC().Format(time.RFC3339Nano)
		typ[i], user[i], actor[i], client[i], ip[i], agent[i], detail[i] = e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent, e.Detail
	}
	// WITH ORDINALITY: ids follow the order the events were queued in.
	_, err := s.exec(ctx, `INSERT INTO audit_events (at, type, user_id, actor_id, client_id, ip, user_agent, detail)
SELECT at, type, user_id, actor_id, client_id, ip, user_agent, detail FROM unnest(?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
	WITH ORDINALITY AS e(at, type, user_id, actor_id, client_id, ip, user_agent, detail, n) ORDER BY n`,
		pq.Array(at), pq.Array(typ), pq.Array(user), pq.Array(actor), pq.Array(client), pq.Array(ip), pq.Array(agent), pq.Array(detail))
	return wrap(err, "append audit events")
}
