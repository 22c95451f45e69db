// Package auth makes tidepool its own token issuer, in the shape of
// Microsoft Entra ID v2 so that Azure clients work unchanged.
//
// An [Issuer] holds one ES256 signing key. It mints access tokens for
// principals ([Issuer.Issue], or over HTTP through the OAuth2
// client-credentials endpoint [Issuer.TokenHandler]), publishes its public key
// ([Issuer.JWKSHandler]) and OpenID metadata ([Issuer.OpenIDConfigHandler]),
// and verifies bearer tokens on incoming requests ([Issuer.Authenticate]).
//
// Verification is on every request's path, and an ECDSA verification costs
// about as much as the rest of a warm request (DESIGN §7). The issuer
// therefore verifies each distinct token once and keeps its claims until the
// token expires; later calls check only expiry and audience.
//
// Client secrets are random strings that the store keeps only as salted
// hashes ([NewSecret], [HashSecret], [CheckSecret]).
package auth
