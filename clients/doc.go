// Package clients is the registry of OAuth 2.0 / OpenID Connect relying
// parties: it validates a client's registration, applies Twofold's
// defaults, issues client ids and secrets, and stores secrets only as a
// keyed hash.
//
// Registration is deliberately strict. Anything Twofold does not support
// (the password and implicit grants, custom URI schemes, wildcard redirect
// URIs) is refused here, with an error naming the field, rather than
// accepted and then failing obscurely at authorize time. Registration only
// validates: the exact redirect-URI match against a request happens in
// fosite when the client authorizes.
package clients
