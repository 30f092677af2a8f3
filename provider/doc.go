// Package provider is the OpenID Connect provider: fosite composed with
// only the handlers Twofold needs, its state kept in the store, the
// signing keys, and the endpoints.
//
// Routes:
//
//	GET  /.well-known/openid-configuration  discovery (serialised once)
//	GET  /jwks                              the public signing keys
//	GET, POST /authorize                    authorization code flow (+PKCE)
//	POST /token                             code, refresh_token, client_credentials
//	GET, POST /userinfo                     claims for a bearer access token
//	POST /revoke                            RFC 7009
//	POST /introspect                        RFC 7662, client-authenticated
//	GET, POST /logout                       RP-initiated logout
//	GET, POST /login                        hosted sign-in (password step)
//	GET, POST /consent                      consent for third-party clients
//
// The login flow: /authorize validates the request with fosite. When the
// browser has no usable SSO session (none, prompt=login, max_age passed)
// it stores a login flow (the original parameters) and redirects to
// /login. Each step loads the flow and refuses any request that is not for
// the flow's current state; the state only moves forward, by a
// compare-and-set in the store. When the flow is done, the stored
// parameters are parsed again by fosite (so every client and redirect
// check runs again) and the response is written. amr, acr and auth_time
// come from the SSO session, never from request input.
package provider
