package provider

// ExpirePolicies makes the next sign-in read the populations' policies
// again, as it would 5 s later.
func (p *Provider) ExpirePolicies() {
	p.policyCache.mu.Lock()
	p.policyCache.exp = p.policyCache.exp.AddDate(-1, 0, 0)
	p.policyCache.mu.Unlock()
}

// Ticked is ticked, for the console's tests.
var Ticked = ticked
