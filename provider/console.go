package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

// The admin console (R04, R15–R21, R24): /admin, for users with the
// admin role. It makes the changes the CLI makes, through the same
// admin package, audited with the admin's id and address.

// ConsoleAuthAge is how old an admin's sign-in may be for the console;
// an older one is asked to sign in again (ASVS 5 7.5: re-authenticate
// before sensitive changes).
const ConsoleAuthAge = time.Hour

const consolePath = "/admin"

const consoleNeedsFactor = "The admin console needs a sign-in with a second factor other than an email code: add an authenticator app or a security key on your account page (/account/security), then come back."

// consoleUsers caps a page of the user list.
const consoleUsers = 100

type consoleBase struct {
	Admin, CSRF, Notice, Error string
}

type consolePolicy struct {
	Population, Grace string
	Required          bool
	Methods           map[string]bool
}

type consoleEvent struct {
	Time, Type, UserID, User, Actor, IP, Detail string
}

type consolePage struct {
	consoleBase
	Policies      []consolePolicy
	AllMethods    []string
	Users         []store.User
	Population    string
	Page          int    // the user list's page, from 1 (0: the first)
	MoreUsers     string // the next page of users, or ""
	Events        []consoleEvent
	Clients       []store.Client
	Keys          []consoleKey // the token-signing keys, public facts only
	Algs          []string
	SMSConfigured bool
}

type consoleKey struct {
	KID, Alg, Created, Retired string
	Active                     bool
}

type consoleUserPage struct {
	consoleBase
	User      store.User
	Factors   []factorView
	Confirmed int // factors confirmed: two-step verification is on
	CodesLeft int
	Required  bool // by the flag or the population's policy
	CanMail   bool // a mail server is configured
	Events    []consoleEvent
	// Phone is the user's number for codes by text, masked, and whether
	// it is confirmed (R09); CanText says a gateway is configured.
	Phone                   string
	PhoneConfirmed, CanText bool
}

// consoleNotices are the fixed messages a redirect can ask for.
var consoleNotices = map[string]string{
	"deauthorized":     "Users have been successfully deauthorized.", // R21, seed 004
	"policy":           "The policy was saved. Servers apply it within 5 seconds.",
	"methods":          "The allowed methods were saved. Servers apply them within 5 seconds.",
	"required":         "Two-step verification is now required for this user.",
	"not-required":     "Two-step verification is no longer required for this user (their population's policy still applies).",
	"reset":            "Their two-step verification methods and recovery codes were removed and they are signed out.",
	"unlocked":         "Their sign-in locks were cleared.",
	"disabled":         "The account is disabled and signed out everywhere.",
	"enabled":          "The account is enabled.",
	"codes-sent":       "New recovery codes were emailed to the user; the old ones no longer work.",
	"signed-out":       "They had no second factor and were signed out: they set one up at their next sign-in.",
	"client-deleted":   "The client and every token issued to it were deleted.",
	"key-rotated":      "A new signing key signs from now on; the one before it stays published until what it signed has expired. Other servers use it within a minute.",
	"client-updated":   "The client's settings were saved. Other servers apply them within 5 seconds.",
	"client-unchanged": "Nothing changed: the client already had these settings.",
	"client-revoked":   "Saved, and every code and token the client held was revoked: its users sign in again.",
	"phone-set":        "The phone was attached. A number not marked confirmed waits for their code, or yours.",
	"confirmed-phone":  "The phone is confirmed: codes by text can be sent to it.",
	"detached-phone":   "The phone was removed.",
}

// consoleAdmin returns the signed-in admin, or writes the answer: a
// sign-in that returns here, a refusal for anyone but an admin, or a new
// sign-in with a second factor when the session has none or is older
// than ConsoleAuthAge (S20: MFA to act as an admin).
func (p *Provider) consoleAdmin(w http.ResponseWriter, r *http.Request) (store.Session, store.User, bool) {
	sess, user, ok := p.currentSession(r)
	if !ok && r.Method == http.MethodPost {
		// No sign-in to act for (signed out, or a post from another
		// site): nothing changes, and no sign-in is started for it.
		p.errorPage(w, r, http.StatusForbidden, "Sign in again", "You are not signed in. Open /admin, sign in, and repeat the change.", "")
		return sess, user, false
	}
	if !ok {
		p.startSignIn(w, r, "", consolePath, false)
		return sess, user, false
	}
	if user.Role != store.RoleAdmin {
		p.errorPage(w, r, http.StatusForbidden, "Administrators only", "Your account cannot open the admin console.", "")
		return sess, user, false
	}
	if slices.Contains(sess.AMR, mfa.AMRMFA) && p.now().Sub(sess.AuthTime) <= ConsoleAuthAge {
		return sess, user, true
	}
	fs, err := p.store.ListFactors(r.Context(), user.ID)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return sess, user, false
	}
	// An admin who signed in through an upstream (one trusted for MFA
	// lets them in) signs in again the same way.
	if sess.Upstream == "" && !slices.ContainsFunc(fs, func(f store.Factor) bool { return f.Confirmed && f.Kind != store.FactorEmail }) {
		p.errorPage(w, r, http.StatusForbidden, "Set up two-step verification first", consoleNeedsFactor, "")
		return sess, user, false
	}
	if r.Method == http.MethodPost {
		// A form posted from a page that outlived the sign-in: nothing
		// is changed; the admin signs in again and starts over.
		p.errorPage(w, r, http.StatusForbidden, "Sign in again", "Your sign-in is too old for admin changes. Open /admin, sign in again, and repeat the change.", "")
		return sess, user, false
	}
	p.startSignIn(w, r, user.ID, consolePath, false)
	return sess, user, false
}

func (p *Provider) consoleBase(r *http.Request, sess store.Session, user store.User) consoleBase {
	return consoleBase{Admin: user.Email, CSRF: p.csrfToken("admin", sess.ID), Notice: consoleNotices[r.URL.Query().Get("notice")]}
}

func (p *Provider) actor(r *http.Request, user store.User) admin.Actor {
	return admin.Actor{ID: user.ID, IP: p.ClientIP(r), UserAgent: userAgent(r)}
}

func (p *Provider) adminService() *admin.Service {
	return &admin.Service{Store: p.store, Now: p.now, Notify: p.notifier.Notify}
}

// handleConsole is the overview: the populations' policies, sign
// everyone out, the users, the latest events.
func (p *Provider) handleConsole(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleAdmin(w, r)
	if !ok {
		return
	}
	p.renderConsole(w, r, http.StatusOK, p.consoleBase(r, sess, user))
}

func (p *Provider) renderConsole(w http.ResponseWriter, r *http.Request, status int, base consoleBase) {
	ctx := r.Context()
	page := consolePage{consoleBase: base, AllMethods: mfa.SetupMethods, SMSConfigured: p.texter != nil, Algs: Algs}
	ps, err := p.store.ListMFAPolicies(ctx)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	pol := mfa.NewPolicies(ps)
	for _, pop := range []store.Population{store.PopulationAgent, store.PopulationContact} {
		cp := consolePolicy{Population: string(pop), Required: pol[pop].Required, Methods: map[string]bool{}}
		if g := pol[pop].GraceUntil; g != nil {
			cp.Grace = g.UTC().Format("2 Jan 2006 15:04 UTC")
		}
		for _, m := range admin.Shown(pol[pop].Methods) {
			cp.Methods[m] = true
		}
		page.Policies = append(page.Policies, cp)
	}
	q := r.URL.Query()
	// One more than a page tells whether a next page exists.
	filter := store.UserFilter{Limit: consoleUsers + 1}
	if pop := store.Population(q.Get("population")); pop.Valid() {
		filter.Population, page.Population = pop, string(pop)
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 && n <= 100000 {
		filter.Offset, page.Page = (n-1)*consoleUsers, n
	}
	if email := strings.TrimSpace(q.Get("email")); email != "" {
		page.Users, err = p.findUsers(ctx, email)
	} else {
		page.Users, err = p.store.ListUsers(ctx, filter)
		if len(page.Users) > consoleUsers {
			page.Users = page.Users[:consoleUsers]
			l := url.Values{"page": {strconv.Itoa(max(page.Page, 1) + 1)}}
			if page.Population != "" {
				l.Set("population", page.Population)
			}
			page.MoreUsers = consolePath + "?" + l.Encode() + "#users"
		}
	}
	if err == nil {
		page.Clients, err = p.store.ListClients(ctx)
	}
	if err == nil {
		page.Keys, err = p.consoleKeys(ctx)
	}
	if err == nil {
		page.Events, err = p.consoleEvents(ctx, store.AuditFilter{Limit: 30})
	}
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	p.render(w, r, status, "admin.html", page)
}

// consoleKeys lists the signing keys, newest first, without their
// private halves.
func (p *Provider) consoleKeys(ctx context.Context) ([]consoleKey, error) {
	ks, err := p.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(ks, func(a, b store.SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	out := make([]consoleKey, 0, len(ks))
	for _, k := range ks {
		v := consoleKey{KID: k.KID, Alg: k.Alg, Active: k.Active, Created: k.CreatedAt.UTC().Format("2 Jan 2006 15:04")}
		if k.RetiredAt != nil {
			v.Retired = k.RetiredAt.UTC().Format("2 Jan 2006 15:04")
		}
		out = append(out, v)
	}
	return out, nil
}

// findUsers looks an email address up in both populations.
func (p *Provider) findUsers(ctx context.Context, email string) ([]store.User, error) {
	key, err := accounts.NormalizeEmail(email)
	if err != nil {
		return nil, nil // not an address: nobody has it
	}
	var out []store.User
	for _, pop := range []store.Population{store.PopulationAgent, store.PopulationContact} {
		u, err := p.store.GetUserByEmail(ctx, pop, key)
		switch {
		case err == nil:
			out = append(out, u)
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	return out, nil
}

func (p *Provider) consoleEvents(ctx context.Context, f store.AuditFilter) ([]consoleEvent, error) {
	events, err := p.store.ListAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	// Users and actors by email where they still exist (ids otherwise).
	names := map[string]string{"": "", "cli": "cli"}
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		names[id] = id
		if u, err := p.store.GetUser(ctx, id); err == nil {
			names[id] = u.Email
		}
		return names[id]
	}
	out := make([]consoleEvent, len(events))
	for i, e := range events {
		out[i] = consoleEvent{Time: e.Time.UTC().Format("2006-01-02 15:04:05"), Type: e.Type, UserID: e.UserID,
			User: name(e.UserID), Actor: name(e.ActorID), IP: e.IP, Detail: e.Detail}
	}
	return out, nil
}

// handleConsoleSubmit changes a population's policy or methods, or signs
// every user but the admin out (R21).
func (p *Provider) handleConsoleSubmit(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	svc, actor := p.adminService(), p.actor(r, user)
	base := p.consoleBase(r, sess, user)
	pop := store.Population(r.PostForm.Get("population"))
	switch r.PostForm.Get("action") {
	case "require-mfa", "stop-mfa":
		require := r.PostForm.Get("action") == "require-mfa"
		var grace *time.Time
		if v := strings.TrimSpace(r.PostForm.Get("grace_until")); require && v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil || !t.After(p.now()) {
				base.Error = "The grace period must end on a future date (YYYY-MM-DD)."
				p.renderConsole(w, r, http.StatusBadRequest, base)
				return
			}
			grace = &t
		}
		if !pop.Valid() {
			base.Error = "Choose agents or contacts."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if _, err := svc.SetPopulationMFA(ctx, actor, pop, require, grace); err != nil {
			p.consoleFailed(w, r, "policy", err)
			return
		}
		p.forgetPolicies()
		p.consoleDone(w, r, consolePath, "policy")
	case "methods":
		methods, err := admin.ParseMethods(r.PostForm["method"])
		if err != nil || !pop.Valid() {
			base.Error = "Allow at least one method, for agents or for contacts."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if err := svc.SetMethods(ctx, actor, []store.Population{pop}, methods); err != nil {
			p.consoleFailed(w, r, "methods", err)
			return
		}
		p.forgetPolicies()
		p.consoleDone(w, r, consolePath, "methods")
	case "create-user":
		password := accounts.GeneratePassword()
		u, err := svc.CreateUser(ctx, actor, p.accounts, accounts.NewUser{Email: r.PostForm.Get("email"),
			Population: pop, Role: store.Role(r.PostForm.Get("role")), Password: password, MustChange: true})
		if msg, bad := badNewUser(err); bad {
			base.Error = "The user was not created: " + msg
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if err != nil {
			p.consoleFailed(w, r, "create user", err)
			return
		}
		p.showOneTimePassword(w, r, u, password, "New user")
	case "create-client":
		spec := clients.Spec{Name: r.PostForm.Get("name"), RedirectURIs: strings.Fields(r.PostForm.Get("redirect_uris")),
			FirstParty: r.PostForm.Get("first_party") == "yes", Public: r.PostForm.Get("public") == "yes",
			RequireMFA: r.PostForm.Get("require_mfa") == "yes"}
		c, secret, err := svc.CreateClient(ctx, actor, p.registry, spec)
		var invalid *clients.ValidationError
		if errors.As(err, &invalid) {
			base.Error = "The client was not registered: " + strings.TrimPrefix(invalid.Error(), "invalid client: ") + "."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if err != nil {
			p.consoleFailed(w, r, "create client", err)
			return
		}
		p.showClientSecret(w, r, c.ID, c.Name, secret)
	case "rotate-secret", "delete-client":
		id := r.PostForm.Get("client")
		c, err := p.store.GetClient(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			p.errorPage(w, r, http.StatusNotFound, "No such client", "It may have been deleted.", "")
			return
		}
		if err != nil {
			p.consoleFailed(w, r, "load client", err)
			return
		}
		if r.PostForm.Get("action") == "delete-client" {
			if r.PostForm.Get("confirm") != "yes" {
				base.Error = "Tick the box beside the client to confirm that it and its tokens are deleted."
				p.renderConsole(w, r, http.StatusBadRequest, base)
				return
			}
			if err := svc.DeleteClient(ctx, actor, c.ID); err != nil {
				p.consoleFailed(w, r, "delete client", err)
				return
			}
			p.fstore.clients.forget(c.ID)
			p.consoleDone(w, r, consolePath, "client-deleted")
			return
		}
		if r.PostForm.Get("confirm") != "yes" {
			base.Error = "Tick the box beside the client to confirm that its secret is replaced: the old one stops working at once."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		secret, err := svc.RotateClientSecret(ctx, actor, p.registry, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			p.errorPage(w, r, http.StatusNotFound, "No such client", "It may have been deleted.", "")
			return
		}
		if errors.Is(err, clients.ErrNoSecret) {
			base.Error = "That client has no secret to replace."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if err != nil {
			p.consoleFailed(w, r, "rotate client secret", err)
			return
		}
		p.fstore.clients.forget(c.ID)
		p.showClientSecret(w, r, c.ID, c.Name, secret)
	case "rotate-key":
		alg := r.PostForm.Get("alg")
		if !slices.Contains(Algs, alg) {
			base.Error = "Choose RS256 or ES256."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if r.PostForm.Get("confirm") != "yes" {
			base.Error = "Tick the box to confirm that a new " + alg + " key signs from now on."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		kid, err := svc.RotateSigningKey(ctx, actor, p.keys, alg)
		if err != nil && kid == "" {
			p.consoleFailed(w, r, "rotate signing key", err)
			return
		}
		if err != nil {
			// The key was made; what failed after it is logged.
			p.logger.ErrorContext(ctx, "admin console change", "change", "rotate signing key", "kid", kid, "err", err)
		}
		p.consoleDone(w, r, consolePath, "key-rotated")
	case "deauthorize":
		if r.PostForm.Get("confirm") != "yes" {
			base.Error = "Tick the box to confirm that every other user is signed out."
			p.renderConsole(w, r, http.StatusBadRequest, base)
			return
		}
		if _, _, err := svc.Deauthorize(ctx, actor, user.ID); err != nil {
			p.consoleFailed(w, r, "deauthorize", err)
			return
		}
		p.consoleDone(w, r, consolePath, "deauthorized")
	default:
		p.errorPage(w, r, http.StatusBadRequest, "Unknown change", "Reload the page and try again.", "")
	}
}

// badNewUser says why an account could not be made, when the input was
// the reason.
func badNewUser(err error) (string, bool) {
	switch {
	case errors.Is(err, accounts.ErrEmailTaken):
		return "that email address already has an account in this population.", true
	case errors.Is(err, accounts.ErrInvalidPopulation):
		return "choose agents or contacts.", true
	case errors.Is(err, accounts.ErrInvalidRole), errors.Is(err, accounts.ErrRoleNotInPopulaton):
		return "contacts have the role contact; agents are admin, supervisor or agent.", true
	case errors.Is(err, accounts.ErrInvalidEmail):
		return "that is not an email address.", true
	}
	return "", false
}

// showOneTimePassword shows a generated one-time password once, on a
// page no cache keeps.
func (p *Provider) showOneTimePassword(w http.ResponseWriter, r *http.Request, u store.User, password, title string) {
	w.Header().Set("Cache-Control", "no-store")
	p.render(w, r, http.StatusOK, "admin_password.html", map[string]string{"Title": title, "Email": u.Email, "ID": u.ID, "Password": password})
}

// showClientSecret answers a registration or a new secret: the secret
// is shown here once and never stored in the clear.
func (p *Provider) showClientSecret(w http.ResponseWriter, r *http.Request, id, name, secret string) {
	w.Header().Set("Cache-Control", "no-store")
	p.render(w, r, http.StatusOK, "admin_client_secret.html", map[string]string{"ID": id, "Name": name, "Secret": secret})
}

// consoleForm is consoleAdmin for a form: the form must carry the CSRF
// token of the admin's session.
func (p *Provider) consoleForm(w http.ResponseWriter, r *http.Request) (store.Session, store.User, bool) {
	sess, user, ok := p.consoleAdmin(w, r)
	if !ok {
		return sess, user, false
	}
	if err := r.ParseForm(); err != nil || !p.checkCSRF("admin", sess.ID, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the page and try again.", "csrf")
		return sess, user, false
	}
	return sess, user, true
}

// consoleDone answers a change with a redirect (POST, then GET), so a
// reload does not repeat it.
func (p *Provider) consoleDone(w http.ResponseWriter, r *http.Request, to, notice string) {
	http.Redirect(w, r, to+"?notice="+notice, http.StatusSeeOther)
}

func (p *Provider) consoleFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	p.logger.ErrorContext(r.Context(), "admin console change", "change", what, "err", err)
	p.errorPage(w, r, http.StatusInternalServerError, "The change was not made", "Nothing was changed. Please try again.", "server_error")
}

// forgetPolicies makes this server read the policies again at once; the
// others see a change within policyCacheTTL.
func (p *Provider) forgetPolicies() {
	p.policyCache.mu.Lock()
	p.policyCache.exp = time.Time{}
	p.policyCache.mu.Unlock()
}

// consoleAuditPage is how many events the audit page shows at once.
const consoleAuditPage = 50

type consoleAuditView struct {
	consoleBase
	Events           []consoleEvent
	Type, User       string
	Page             int
	Newer, Older     string // links to the neighbouring pages, "" at an end
	UserEmail, Types string
}

// handleConsoleAudit is the audit log (R24), newest first, a page at a
// time, narrowed to an event type (or a prefix ending in ".") or a user.
func (p *Provider) handleConsoleAudit(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleAdmin(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	v := consoleAuditView{consoleBase: p.consoleBase(r, sess, user), Type: strings.TrimSpace(q.Get("type")), User: q.Get("user")}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 && n <= 10000 {
		v.Page = n - 1
	}
	// One more than a page tells whether an older page exists.
	events, err := p.consoleEvents(r.Context(), store.AuditFilter{UserID: v.User, Type: v.Type,
		Limit: consoleAuditPage + 1, Offset: v.Page * consoleAuditPage})
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	link := func(page int) string {
		l := url.Values{"page": {strconv.Itoa(page + 1)}}
		if v.Type != "" {
			l.Set("type", v.Type)
		}
		if v.User != "" {
			l.Set("user", v.User)
		}
		return consolePath + "/audit?" + l.Encode()
	}
	if len(events) > consoleAuditPage {
		events, v.Older = events[:consoleAuditPage], link(v.Page+1)
	}
	if v.Page > 0 {
		v.Newer = link(v.Page - 1)
	}
	v.Events = events
	if v.User != "" {
		if u, err := p.store.GetUser(r.Context(), v.User); err == nil {
			v.UserEmail = u.Email
		}
	}
	p.render(w, r, http.StatusOK, "admin_audit.html", v)
}

// handleConsoleUser shows one user: their methods, locks and events.
func (p *Provider) handleConsoleUser(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleAdmin(w, r)
	if !ok {
		return
	}
	p.renderConsoleUser(w, r, http.StatusOK, p.consoleBase(r, sess, user), r.PathValue("id"))
}

func (p *Provider) renderConsoleUser(w http.ResponseWriter, r *http.Request, status int, base consoleBase, id string) {
	ctx := r.Context()
	u, err := p.store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		p.errorPage(w, r, http.StatusNotFound, "No such user", "The user may have been deleted.", "")
		return
	}
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	page := consoleUserPage{consoleBase: base, User: u, CanMail: p.mailer != nil, CanText: p.texter != nil}
	fs, err := p.store.ListFactors(ctx, u.ID)
	if err == nil {
		page.CodesLeft, err = p.store.CountRecoveryCodes(ctx, u.ID)
	}
	if err == nil {
		page.Events, err = p.consoleEvents(ctx, store.AuditFilter{UserID: u.ID, Limit: 30})
	}
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	ps, err := p.store.ListMFAPolicies(ctx)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	page.Required = mfa.Required(u, mfa.NewPolicies(ps))
	for _, f := range fs {
		v := viewOf(f)
		if f.Kind == store.FactorSMS {
			page.Phone, page.PhoneConfirmed = sms.Mask(f.Phone), f.Confirmed
		}
		if f.Confirmed {
			page.Confirmed++
		} else {
			v.Label += " (not confirmed)"
		}
		page.Factors = append(page.Factors, v)
	}
	p.render(w, r, status, "admin_user.html", page)
}

// handleConsoleUserSubmit changes one user (R15, R19, R20).
func (p *Provider) handleConsoleUserSubmit(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	u, err := p.store.GetUser(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		p.errorPage(w, r, http.StatusNotFound, "No such user", "The user may have been deleted.", "")
		return
	}
	if err != nil {
		p.consoleFailed(w, r, "load user", err)
		return
	}
	svc, actor := p.adminService(), p.actor(r, user)
	here := consolePath + "/users/" + url.PathEscape(u.ID)
	refuse := func(msg string) {
		base := p.consoleBase(r, sess, user)
		base.Error = msg
		p.renderConsoleUser(w, r, http.StatusBadRequest, base, u.ID)
	}
	action := r.PostForm.Get("action")
	if u.ID == user.ID && action != "unlock" {
		// Their own methods are on the account page, where removing one
		// asks for a fresh sign-in; disabling oneself would lock the
		// console's last door.
		refuse("Change your own account on your account page.")
		return
	}
	switch action {
	case "require-mfa", "stop-mfa":
		signedOut, err := svc.RequireUserMFA(ctx, actor, u, action == "require-mfa")
		if err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		notice := map[bool]string{true: "required", false: "not-required"}[action == "require-mfa"]
		if signedOut {
			notice = "signed-out"
		}
		p.consoleDone(w, r, here, notice)
	case "reset-mfa":
		if r.PostForm.Get("confirm") != "yes" {
			refuse("Tick the box to confirm that their methods are removed.")
			return
		}
		_, err := svc.ResetMFA(ctx, actor, u)
		if errors.Is(err, admin.ErrContactsEnforced) {
			refuse("Two-step verification is required of every contact, so it cannot be removed for one. Send them new recovery codes instead.")
			return
		}
		if err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		p.consoleDone(w, r, here, "reset")
	case "send-recovery-codes":
		if p.mailer == nil {
			refuse("No mail server is configured (email.smtp_addr).")
			return
		}
		_, err := svc.SendRecoveryCodes(ctx, actor, u, p.mailer, p.recovery, p.issuer.String())
		switch {
		case errors.Is(err, admin.ErrNoFactor):
			refuse("They have no two-step verification method, so recovery codes would not be asked for.")
			return
		case errors.Is(err, admin.ErrNotMailed):
			p.logger.ErrorContext(ctx, "admin console change", "change", action, "err", err)
			refuse("The mail could not be sent, so nothing changed: their old codes still work. Try again later.")
			return
		case err != nil:
			p.logger.ErrorContext(ctx, "admin console change", "change", action, "err", err)
			p.errorPage(w, r, http.StatusInternalServerError, "The codes were not stored",
				"The mail went out but the new codes could not be stored, so they do not work and the old ones still do. Send them again.", "server_error")
			return
		}
		p.consoleDone(w, r, here, "codes-sent")
	case "set-phone":
		number := strings.Join(strings.Fields(r.PostForm.Get("phone")), "")
		err := svc.SetPhone(ctx, actor, u, number, r.PostForm.Get("confirmed") == "yes")
		if errors.Is(err, admin.ErrBadNumber) {
			refuse("Enter the number with + and its country code, as in +447700900123.")
			return
		}
		if err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		p.consoleDone(w, r, here, "phone-set")
	case "confirm-phone", "detach-phone":
		if action == "detach-phone" && r.PostForm.Get("confirm") != "yes" {
			refuse("Tick the box to confirm that the phone is removed.")
			return
		}
		var err error
		if action == "confirm-phone" {
			_, err = svc.ConfirmPhone(ctx, actor, u)
		} else {
			_, err = svc.DetachPhone(ctx, actor, u)
		}
		if errors.Is(err, admin.ErrNoPhone) {
			refuse("They have no phone.")
			return
		}
		if err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		p.consoleDone(w, r, here, strings.TrimSuffix(action, "-phone")+"ed-phone")
	case "reset-password":
		if r.PostForm.Get("confirm") != "yes" {
			refuse("Tick the box to confirm that their password is replaced and they are signed out.")
			return
		}
		password, err := svc.ResetPassword(ctx, actor, p.accounts, u)
		if err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		p.showOneTimePassword(w, r, u, password, "New password")
	case "unlock":
		if err := svc.Unlock(ctx, actor, u); err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		p.consoleDone(w, r, here, "unlocked")
	case "disable", "enable":
		if err := svc.SetDisabled(ctx, actor, u, action == "disable"); err != nil {
			p.consoleFailed(w, r, action, err)
			return
		}
		p.consoleDone(w, r, here, action+"d")
	default:
		p.errorPage(w, r, http.StatusBadRequest, "Unknown change", "Reload the page and try again.", "")
	}
}
