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
// change (`twofold policy mfa`) reaches every replica within this time.
const policyCacheTTL = 5 * time.Second

type policyCache struct {
	mu  sync.Mutex
	pol mfa.Policies
	exp time.Time
}

// policies returns the populations' MFA policies (R15, R17), read at most
// once per policyCacheTTL. When the store cannot be read it fails closed:
// every population requires a second factor, with no grace.
func (p *Provider) policies(ctx context.Context) mfa.Policies {
	c := &p.policyCache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.pol != nil && now.Before(c.exp) {
		return c.pol
	}
	ps, err := p.store.ListMFAPolicies(ctx)
	if err != nil {
		p.logger.ErrorContext(ctx, "read mfa policies", "err", err)
		return mfa.Policies{store.PopulationAgent: {Required: true}, store.PopulationContact: {Required: true}}
	}
	c.pol, c.exp = mfa.NewPolicies(ps), now.Add(policyCacheTTL)
	return c.pol
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

func (p *Provider) deferrableNow(ctx context.Context, user store.User) bool {
	return !p.deferral(ctx, user).IsZero()
}
