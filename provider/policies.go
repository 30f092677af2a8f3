package provider

import (
	"context"
	"sync"
	"time"

	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// policyCacheTTL is how long a replica trusts the populations' policies
// it has read: every sign-in consults them, and they change rarely. A
// change (`twofold policy mfa`, `policy methods`) reaches every replica
// within this time.
const policyCacheTTL = 5 * time.Second

type policyCache struct {
	mu  sync.Mutex
	pol mfa.Policies
	exp time.Time
}

// failClosed is every population requiring a second factor, with no
// grace, and the methods last read (every method if none were): what a
// sign-in gets while the policies cannot be read.
func failClosed(last mfa.Policies) mfa.Policies {
	out := mfa.Policies{}
	for _, pop := range []store.Population{store.PopulationAgent, store.PopulationContact} {
		out[pop] = store.MFAPolicy{Population: pop, Required: true, Methods: last[pop].Methods}
	}
	return out
}

// policies returns the populations' MFA policies (R15, R17), read at most
// once per policyCacheTTL (the store is not read under the lock, so a
// slow read holds no sign-in up but its own). When the store cannot be
// read it fails closed, for a second before it tries again.
func (p *Provider) policies(ctx context.Context) mfa.Policies {
	c := &p.policyCache
	now := time.Now()
	c.mu.Lock()
	pol, fresh := c.pol, now.Before(c.exp)
	c.mu.Unlock()
	if pol != nil && fresh {
		return pol
	}
	ps, err := p.store.ListMFAPolicies(ctx)
	ttl := policyCacheTTL
	if err != nil {
		p.logger.ErrorContext(ctx, "read mfa policies", "err", err)
		pol, ttl = failClosed(pol), time.Second
	} else {
		pol = mfa.NewPolicies(ps)
	}
	c.mu.Lock()
	c.pol, c.exp = pol, now.Add(ttl)
	c.mu.Unlock()
	return pol
}

// required: must user have a second factor (their flag, their
// population's policy)? A required factor cannot be turned off (R18).
func (p *Provider) required(ctx context.Context, user store.User) bool {
	return mfa.Required(user, p.policies(ctx))
}

// deferral says until when user may put setting a second factor up off
// at this sign-in (R17); zero when they may not.
func (p *Provider) deferral(ctx context.Context, user store.User) time.Time {
	pol := p.policies(ctx)
	if !mfa.Deferrable(user, pol, p.now()) {
		return time.Time{}
	}
	return *pol[user.Population].GraceUntil
}
