// An independent relying party for Twofold: panva's certified
// openid-client (v6, on oauth4webapi). conformance/node_test.go runs it
// and plays the browser:
//
//  1. this script discovers the provider and prints one JSON line
//     {"step":"authorize","authorization_url":...} (code flow, PKCE S256,
//     state, nonce);
//  2. the Go test signs in and writes the callback URL to stdin;
//  3. this script redeems the code (state, RFC 9207 iss, nonce and the ID
//     token's signature against the JWKS all checked by openid-client),
//     calls userinfo, refreshes, builds the RP-initiated logout URL and a
//     prompt=none authorization URL, and prints {"step":"done",...};
//  4. the Go test logs out with that URL, sends the browser to the
//     prompt=none URL and writes the callback (an error: nobody is signed
//     in) to stdin;
//  5. this script hands it to openid-client, which must surface the
//     provider's error (AuthorizationResponseError login_required), and
//     prints {"step":"silent",...} with what openid-client made of it.
//
// Any failure is printed to stderr and exits non-zero.
//
// Input (environment): RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET,
// RP_REDIRECT_URI, RP_POST_LOGOUT_REDIRECT_URI. The test CA comes in
// through NODE_EXTRA_CA_CERTS.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

function env(name) {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set`)
  return v
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// Lines from stdin, one per awaited readLine().
const input = createInterface({ input: process.stdin })
const queued = []
const waiting = []
let inputClosed = false
input.on('line', (line) => {
  const w = waiting.shift()
  if (w) w.resolve(line.trim())
  else queued.push(line.trim())
})
input.on('close', () => {
  inputClosed = true
  for (const w of waiting.splice(0)) w.reject(new Error('stdin closed before the expected line arrived'))
})

function readLine() {
  if (queued.length > 0) return Promise.resolve(queued.shift())
  if (inputClosed) return Promise.reject(new Error('stdin closed before the expected line arrived'))
  return new Promise((resolve, reject) => waiting.push({ resolve, reject }))
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`)
}

async function main() {
  const issuer = new URL(env('RP_ISSUER'))
  const clientId = env('RP_CLIENT_ID')
  const clientSecret = env('RP_CLIENT_SECRET')
  const redirectUri = env('RP_REDIRECT_URI')
  const postLogoutRedirectUri = env('RP_POST_LOGOUT_REDIRECT_URI')

  // Discovery: openid-client checks that the document's issuer is the
  // URL it was fetched for.
  const config = await client.discovery(
    issuer,
    clientId,
    { client_secret: clientSecret, id_token_signed_response_alg: 'RS256' },
    client.ClientSecretBasic(clientSecret),
  )
  // Verify ID token signatures against jwks_uri even on the token
  // endpoint's TLS-protected answers (off by default in oauth4webapi).
  client.enableNonRepudiationChecks(config)
  const meta = config.serverMetadata()
  assert(meta.supportsPKCE(), 'discovery advertises PKCE S256')

  const codeVerifier = client.randomPKCECodeVerifier()
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  })
  emit({ step: 'authorize', authorization_url: authorizationUrl.href, state, nonce })

  const callback = new URL(await readLine())
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  assert(claims && claims.sub, 'an ID token with sub')
  assert(tokens.token_type.toLowerCase() === 'bearer', `token_type ${tokens.token_type}`)
  assert(tokens.refresh_token, 'a refresh token (offline_access)')

  // Userinfo: openid-client checks that sub is the ID token's.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const refreshedClaims = refreshed.claims()
  assert(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'the refresh token is rotated')
  if (refreshedClaims) {
    assert(refreshedClaims.sub === claims.sub, 'a refreshed ID token keeps sub')
    assert(refreshedClaims.auth_time === claims.auth_time, 'a refreshed ID token keeps auth_time')
  }
  const refreshedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)

  const logoutState = client.randomState()
  const endSessionUrl = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token ?? tokens.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: logoutState,
  })

  const silentState = client.randomState()
  const silentCodeVerifier = client.randomPKCECodeVerifier()
  const silentAuthorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid',
    prompt: 'none',
    code_challenge: await client.calculatePKCECodeChallenge(silentCodeVerifier),
    code_challenge_method: 'S256',
    state: silentState,
  })

  emit({
    step: 'done',
    id_token: tokens.id_token,
    id_token_claims: claims,
    userinfo,
    refreshed_id_token_claims: refreshedClaims ?? null,
    refreshed_userinfo_sub: refreshedUserinfo.sub,
    refresh_token_rotated: refreshed.refresh_token !== tokens.refresh_token,
    end_session_url: endSessionUrl.href,
    logout_state: logoutState,
    silent_authorization_url: silentAuthorizationUrl.href,
    silent_state: silentState,
  })

  // An error response, as a relying party meets it after sign-out.
  const silentCallback = new URL(await readLine())
  let outcome
  try {
    await client.authorizationCodeGrant(config, silentCallback, {
      pkceCodeVerifier: silentCodeVerifier,
      expectedState: silentState,
    })
    outcome = { name: 'accepted' }
  } catch (err) {
    outcome = { name: err?.name, code: err?.code, error: err?.error, message: err?.message, cause: err?.cause?.message }
  }
  emit({ step: 'silent', ...outcome })
  input.close()
}

main().catch((err) => {
  console.error(err?.stack ?? String(err))
  if (err?.cause) console.error('cause:', err.cause)
  process.exit(1)
})
