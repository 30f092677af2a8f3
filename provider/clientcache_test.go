package provider

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/twofold-idp/twofold/store"
)

func TestClientCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cc := &clientCache{now: func() time.Time { return now }}
	_, ok := cc.get("a")
	assert.False(t, ok)
	cc.put(newClient(store.Client{ID: "a", Name: "A"}))
	c, ok := cc.get("a")
	assert.True(t, ok)
	assert.Equal(t, "A", c.Name)

	now = now.Add(clientCacheTTL)
	_, ok = cc.get("a")
	assert.False(t, ok, "a change reaches every replica within the TTL")

	for i := range clientCacheMax + 1 {
		cc.put(newClient(store.Client{ID: fmt.Sprint(i)}))
	}
	assert.LessOrEqual(t, len(cc.m), clientCacheMax, "bounded")
}
