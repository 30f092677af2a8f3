package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// SuiteCommit is the conformance-suite commit whose modules the tests
// re-create (openid-certification/conformance-suite).
const SuiteCommit = "12f2a4dac646"

// EnvReport names the variable that makes the tests write their results
// as JSON to the path it holds.
const EnvReport = "TWOFOLD_CONFORMANCE_REPORT"

// Module is one test module of a plan.
type Module struct {
	// Name is the suite's testName.
	Name string
	// Class is the suite's Java class, in
	// src/main/java/net/openid/conformance/openid/.
	Class string
}

// Plan is a test plan: its modules in plan order.
type Plan struct {
	Name    string
	Modules []Module
}

// BasicPlan is oidcc-basic-certification-test-plan (OIDCCBasicTestPlan).
var BasicPlan = Plan{Name: "oidcc-basic-certification-test-plan", Modules: []Module{
	{"oidcc-server", "OIDCCServerTest"},
	{"oidcc-response-type-missing", "OIDCCResponseTypeMissing"},
	{"oidcc-idtoken-signature", "OIDCCIdTokenSignature"},
	{"oidcc-idtoken-unsigned", "OIDCCIdTokenUnsigned"},
	{"oidcc-userinfo-get", "OIDCCUserInfoGet"},
	{"oidcc-userinfo-post-header", "OIDCCUserInfoPostHeader"},
	{"oidcc-userinfo-post-body", "OIDCCUserInfoPostBody"},
	{"oidcc-ensure-request-without-nonce-succeeds-for-code-flow", "OIDCCEnsureRequestWithoutNonceSucceedsForCodeFlow"},
	{"oidcc-scope-profile", "OIDCCScopeProfile"},
	{"oidcc-scope-email", "OIDCCScopeEmail"},
	{"oidcc-scope-address", "OIDCCScopeAddress"},
	{"oidcc-scope-phone", "OIDCCScopePhone"},
	{"oidcc-scope-all", "OIDCCScopeAll"},
	{"oidcc-alternate-happy-flow", "OIDCCAlternateHappyFlow"},
	{"oidcc-display-page", "OIDCCDisplayPage"},
	{"oidcc-display-popup", "OIDCCDisplayPopup"},
	{"oidcc-prompt-login", "OIDCCPromptLogin"},
	{"oidcc-prompt-none-not-logged-in", "OIDCCPromptNoneNotLoggedIn"},
	{"oidcc-prompt-none-logged-in", "OIDCCPromptNoneLoggedIn"},
	{"oidcc-max-age-1", "OIDCCMaxAge1"},
	{"oidcc-max-age-10000", "OIDCCMaxAge10000"},
	{"oidcc-ensure-request-with-unknown-parameter-succeeds", "OIDCCEnsureRequestWithUnknownParameterSucceeds"},
	{"oidcc-id-token-hint", "OIDCCIdTokenHint"},
	{"oidcc-login-hint", "OIDCCLoginHint"},
	{"oidcc-ui-locales", "OIDCCUiLocales"},
	{"oidcc-claims-locales", "OIDCCClaimsLocales"},
	{"oidcc-ensure-request-with-acr-values-succeeds", "OIDCCEnsureRequestWithAcrValuesSucceeds"},
	{"oidcc-codereuse", "OIDCCAuthCodeReuse"},
	{"oidcc-codereuse-30seconds", "OIDCCAuthCodeReuseAfter30Seconds"},
	{"oidcc-ensure-registered-redirect-uri", "OIDCCEnsureRegisteredRedirectUri"},
	{"oidcc-ensure-post-request-succeeds", "OIDCCEnsurePostRequestSucceeds"},
	{"oidcc-server-client-secret-post", "OIDCCServerTestClientSecretPost"},
	{"oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported", "OIDCCRequestUriUnsignedSupportedCorrectlyOrRejectedAsUnsupported"},
	{"oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported", "OIDCCUnsignedRequestObjectSupportedCorrectlyOrRejectedAsUnsupported"},
	{"oidcc-claims-essential", "OIDCCClaimsEssential"},
	{"oidcc-ensure-request-object-with-redirect-uri", "OIDCCEnsureRequestObjectWithRedirectUri"},
	{"oidcc-refresh-token", "OIDCCRefreshToken"},
	{"oidcc-ensure-request-with-valid-pkce-succeeds", "OIDCCEnsureRequestWithValidPkceSucceeds"},
}}

// ConfigPlan is oidcc-config-certification-test-plan (OIDCCConfigTestPlan).
var ConfigPlan = Plan{Name: "oidcc-config-certification-test-plan", Modules: []Module{
	{"oidcc-discovery-endpoint-verification", "OIDCCDiscoveryEndpointVerification"},
}}

// NodePlan is not an OIDF plan: panva's certified openid-client (npm) as
// an independent relying party.
var NodePlan = Plan{Name: "openid-client (Node relying party)", Modules: []Module{
	{"openid-client-code-flow", ""},
	{"openid-client-error-response", ""},
}}

// Plans lists every plan the report shows, in order.
func Plans() []Plan { return []Plan{BasicPlan, ConfigPlan, NodePlan} }

// Databases the tests run on, in report order, with their display names.
var Databases = []struct{ Name, Title string }{{"sqlite", "SQLite"}, {"postgres", "PostgreSQL"}}

// Status is a module's outcome.
type Status string

// Outcomes. The suite's WARNING is a pass with warnings; its SKIPPED is
// not applicable, with the reason.
const (
	Pass          Status = "pass"
	Fail          Status = "fail"
	NotApplicable Status = "not applicable"
)

// Result is one module's outcome on one database.
type Result struct {
	Plan     string   `json:"plan"`
	Database string   `json:"database"`
	Module   string   `json:"module"`
	Status   Status   `json:"status"`
	Reason   string   `json:"reason,omitempty"` // why not applicable, or a note on a pass
	Warnings []string `json:"warnings,omitempty"`
	Failures []string `json:"failures,omitempty"`
	Seconds  float64  `json:"seconds"`
}

// Report is what a test run recorded.
type Report struct {
	SuiteCommit string   `json:"suite_commit"`
	Results     []Result `json:"results"`
}

// WriteFile writes the report as JSON.
func (r *Report) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport reads a report written by WriteFile.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Find returns the result of one module on one database.
func (r *Report) Find(plan, database, module string) (Result, bool) {
	for _, x := range r.Results {
		if x.Plan == plan && x.Database == database && x.Module == module {
			return x, true
		}
	}
	return Result{}, false
}

// Totals counts outcomes per database over the OIDF plans (the Node
// relying party is counted apart); modules without a result count as
// "not run".
type Totals struct {
	Database                          string
	Pass, Fail, NotApplicable, NotRun int
	Warnings                          int // passing modules with warnings
}

// Totals returns one row per database.
func (r *Report) Totals() []Totals {
	var out []Totals
	for _, db := range Databases {
		t := Totals{Database: db.Title}
		for _, p := range []Plan{BasicPlan, ConfigPlan} {
			for _, m := range p.Modules {
				res, ok := r.Find(p.Name, db.Name, m.Name)
				switch {
				case !ok:
					t.NotRun++
				case res.Status == Pass:
					t.Pass++
					if len(res.Warnings) > 0 {
						t.Warnings++
					}
				case res.Status == Fail:
					t.Fail++
				case res.Status == NotApplicable:
					t.NotApplicable++
				}
			}
		}
		out = append(out, t)
	}
	return out
}

// Markdown renders the report: totals, then one table per plan with a
// column per database and the reasons, warnings and failures as notes.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Conformance\n\n")
	b.WriteString("The OpenID Foundation's OP conformance modules, re-created as Go tests in `conformance/` ")
	fmt.Fprintf(&b, "(suite commit `%s`), run over https against a real Twofold on each database. ", r.SuiteCommit)
	b.WriteString("Generated by `go run ./conformance/cmd/report -in /tmp/conformance.json` from the results of\n")
	b.WriteString("`TWOFOLD_CONFORMANCE_REPORT=/tmp/conformance.json go test ./conformance/` (PostgreSQL too when ")
	b.WriteString("`TWOFOLD_TEST_DATABASE_URL` is set); do not edit by hand.\n\n")
	b.WriteString("\"pass\" includes the suite's WARNING outcomes (listed in the notes); \"not applicable\" is the suite's SKIPPED, or a module for dynamically registered clients only. ")
	b.WriteString("The plan's clients are registered with PKCE optional (`--pkce-optional`), as the suite's Basic plan sends no PKCE; Twofold requires it of every other client.\n\n")

	b.WriteString("## Totals (Basic and Config plans, ")
	fmt.Fprintf(&b, "%d modules)\n\n", len(BasicPlan.Modules)+len(ConfigPlan.Modules))
	b.WriteString("| database | pass | of which with warnings | fail | not applicable | not run |\n|---|---|---|---|---|---|\n")
	for _, t := range r.Totals() {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", t.Database, t.Pass, t.Warnings, t.Fail, t.NotApplicable, t.NotRun)
	}
	for _, p := range Plans() {
		fmt.Fprintf(&b, "\n## %s\n\n", p.Name)
		b.WriteString("| # | module |")
		for _, db := range Databases {
			b.WriteString(" " + db.Title + " |")
		}
		b.WriteString(" notes |\n|---|---|")
		for range Databases {
			b.WriteString("---|")
		}
		b.WriteString("---|\n")
		for i, m := range p.Modules {
			fmt.Fprintf(&b, "| %d | `%s` |", i+1, m.Name)
			var notes noteList
			for _, db := range Databases {
				res, ok := r.Find(p.Name, db.Name, m.Name)
				if !ok {
					b.WriteString(" not run |")
					continue
				}
				notes.ran++
				cell := string(res.Status)
				if res.Status == Pass && len(res.Warnings) > 0 {
					cell += fmt.Sprintf(" (%d warning%s)", len(res.Warnings), plural(len(res.Warnings)))
				}
				if res.Status == Fail {
					cell = "**fail**"
				}
				b.WriteString(" " + cell + " |")
				if res.Reason != "" {
					notes.add("", res.Reason, db.Title)
				}
				for _, w := range res.Warnings {
					notes.add("warning", w, db.Title)
				}
				for _, f := range res.Failures {
					notes.add("failure", f, db.Title)
				}
				if res.Status == Fail && len(res.Failures) == 0 {
					notes.add("failure", "see the test log", db.Title)
				}
			}
			fmt.Fprintf(&b, " %s |\n", escapeCell(notes.String()))
		}
	}
	return b.String()
}

// Sorted returns the results ordered by plan, module and database.
func (r *Report) Sorted() []Result {
	order := map[string]int{}
	i := 0
	for _, p := range Plans() {
		for _, m := range p.Modules {
			order[p.Name+"\x00"+m.Name] = i
			i++
		}
	}
	dbOrder := map[string]int{}
	for i, db := range Databases {
		dbOrder[db.Name] = i
	}
	out := slices.Clone(r.Results)
	slices.SortStableFunc(out, func(a, b Result) int {
		if d := order[a.Plan+"\x00"+a.Module] - order[b.Plan+"\x00"+b.Module]; d != 0 {
			return d
		}
		return dbOrder[a.Database] - dbOrder[b.Database]
	})
	return out
}

// noteList collects a module's notes, each once, with the databases it
// was seen on (named when it was not seen on every database it ran on).
type noteList struct {
	ran  int // databases the module ran on
	keys []string
	kind map[string]string
	text map[string]string
	dbs  map[string][]string
}

func (n *noteList) add(kind, text, db string) {
	if n.dbs == nil {
		n.kind, n.text, n.dbs = map[string]string{}, map[string]string{}, map[string][]string{}
	}
	k := kind + "\x00" + text
	if _, ok := n.dbs[k]; !ok {
		n.keys = append(n.keys, k)
		n.kind[k], n.text[k] = kind, text
	}
	n.dbs[k] = append(n.dbs[k], db)
}

func (n *noteList) String() string {
	var parts []string
	for _, k := range n.keys {
		label := n.kind[k]
		if len(n.dbs[k]) < n.ran {
			label = strings.TrimSpace(label + " (" + strings.Join(n.dbs[k], ", ") + " only)")
		}
		if label != "" {
			label += ": "
		}
		parts = append(parts, label+n.text[k])
	}
	return strings.Join(parts, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}
