package provider

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/store"
)

// clientCacheTTL is how long a replica trusts a client it has read: the
// token endpoint reads the client on every request, and clients change
// rarely. A deleted client, a rotated secret or new redirect URIs reach
// every replica within this time (`twofold clients` changes come from
// another process anyway).
const clientCacheTTL = 5 * time.Second

// clientCache keeps recently read clients (with their parsed JWKS).
type clientCache struct {
	mu  sync.Mutex
	m   map[string]cachedClient
	now func() time.Time // time.Now when nil
}

type cachedClient struct {
	c   *client
	exp time.Time
}

const clientCacheMax = 1024

func (cc *clientCache) get(id string) (*client, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[id]
	if !ok || !cc.clock().Before(e.exp) {
		return nil, false
	}
	return e.c, true
}

func (cc *clientCache) put(c *client) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil || len(cc.m) >= clientCacheMax {
		cc.m = map[string]cachedClient{} // simple bound: start over
	}
	cc.m[c.ID] = cachedClient{c: c, exp: cc.clock().Add(clientCacheTTL)}
}

// forget drops client id, changed or deleted on this server.
func (cc *clientCache) forget(id string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.m, id)
}

func (cc *clientCache) clock() time.Time {
	if cc.now != nil {
		return cc.now()
	}
	return time.Now()
}

// client reads a registered client through the same short cache as the
// token endpoint: the sign-in pages ask for it at almost every step (its
// name, consent, its MFA requirement), and fosite has just read it.
func (p *Provider) client(ctx context.Context, id string) (store.Client, error) {
	c, err := p.fstore.GetClient(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return store.Client{}, store.ErrNotFound
	}
	if err != nil {
		return store.Client{}, err
	}
	return c.(*client).Client, nil
}
