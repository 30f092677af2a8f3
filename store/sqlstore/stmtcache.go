package sqlstore

import (
	"sync"

	"github.com/jmoiron/sqlx"
)

// stmtCacheMax bounds the prepared statements: the store's queries are a
// fixed set of about a hundred; anything past the bound runs unprepared.
const stmtCacheMax = 256

// stmtCache keeps one prepared statement per query text.
type stmtCache struct {
	mu      sync.RWMutex
	m       map[string]*sqlx.Stmt
	pending map[string]bool // being prepared
	off     bool            // never prepare (statement_cache=off), or closed
}

// claim marks query as being prepared; false when it already is.
func (c *stmtCache) claim(query string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off || c.pending[query] || c.m[query] != nil || len(c.m)+len(c.pending) >= stmtCacheMax {
		return false
	}
	if c.pending == nil {
		c.pending = map[string]bool{}
	}
	c.pending[query] = true
	return true
}

func (c *stmtCache) unclaim(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, query)
}

func (c *stmtCache) get(query string) *sqlx.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query]
}

// put keeps st and returns the statement to use: st, or the one another
// goroutine stored first (st is then closed), or nil when the cache is
// full (st is closed).
func (c *stmtCache) put(query string, st *sqlx.Stmt) *sqlx.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, query)
	if old, ok := c.m[query]; ok {
		st.Close()
		return old
	}
	if c.off || len(c.m) >= stmtCacheMax {
		st.Close()
		return nil
	}
	if c.m == nil {
		c.m = map[string]*sqlx.Stmt{}
	}
	c.m[query] = st
	return st
}

// close closes every statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
	c.off = true // a prepare still running closes what it made
}
