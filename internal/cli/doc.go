// Package cli is the tidepool command-line client: the az commands that
// drive session pools (login, account, group, provider, containerapp
// sessionpool, session, identity, role, resource, deployment), spoken against
// a tidepool server's management and data-plane APIs.
//
// Each command builds a request, sends it through an armClient (token cache,
// error envelope, long-running operations) and hands its result to the
// output writer, which applies --query (JMESPath) and --output the way az
// does: sorted-key JSON, YAML, TSV, or a table of top-level scalars.
//
// AddCommands attaches the commands to a cobra root; cmd/tidepool wires it.
// Nothing here is global: an App carries the streams, the config directory
// and the HTTP client, so tests run many CLIs in one process.
package cli
