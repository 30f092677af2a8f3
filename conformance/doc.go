// Package conformance re-creates the OpenID Foundation's OP conformance
// checks as Go tests, and holds the result table they fill in.
//
// The official suite (openid-certification/conformance-suite) needs Java,
// MongoDB and Docker, none of which run in this project's CI. The tests
// here re-implement its checks, module by module, against a real Twofold
// provider served over https on loopback (providertest with TLS), once on
// SQLite and once on PostgreSQL:
//
//   - TestBasicPlan: the 38 modules of oidcc-basic-certification-test-plan
//     (code flow, client_secret_basic, static clients), one subtest per
//     module named with the suite's exact testName, for example
//     TestBasicPlan/sqlite/oidcc-prompt-login. Every module also applies
//     the checks the suite applies everywhere (AbstractOIDCCServerTest):
//     JWKS kids, 10-character state and nonce, RFC 9207 iss, the ID token
//     claims and signature, the allowed error parameters, code length and
//     token entropy.
//   - TestConfigPlan: oidcc-discovery-endpoint-verification.
//   - TestOpenIDClient: panva's certified openid-client (npm, in node/)
//     runs discovery, the code flow with PKCE, ID token validation,
//     userinfo, refresh and RP-initiated logout against the provider, then
//     must surface a prompt=none error response as the provider's error;
//     the Go test plays the browser. Without node or node/node_modules it
//     skips (run `npm ci` in node/); with CI=true it fails instead.
//
// The relying party side uses independent libraries: golang.org/x/oauth2
// for the token endpoint and github.com/coreos/go-oidc/v3 for discovery
// and ID token verification, plus the extra checks the suite makes that
// neither library does. Where the suite asks a human to review a
// screenshot, the tests assert the behaviour instead: an HTML error page,
// a 4xx status and no Location header.
//
// Each module records pass, fail or not applicable (with the reason) in a
// result table; the suite's WARNING outcomes are kept as warnings on a
// passing module. Modules that only apply to dynamically registered
// clients, or that the suite skips for a Twofold metadata value, record
// "not applicable" with the reason instead of calling t.Skip. With
// TWOFOLD_CONFORMANCE_REPORT=path the tests write the table as JSON (a
// relative path is taken from this directory, where go test runs), and
//
//	go run ./conformance/cmd/report -in path -out CONFORMANCE.md
//
// turns it into the markdown report. See ../shared/conformance.md for the
// suite files each module follows.
package conformance
