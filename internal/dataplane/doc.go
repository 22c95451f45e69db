// Package dataplane serves a session pool's data-plane API: the routes under
// a pool's poolManagementEndpoint,
// {public-url}/subscriptions/{s}/resourceGroups/{rg}/sessionPools/{pool}.
//
// Azure clients speak three wire families to those routes (see
// shared/reference/dataplane-api.md and docs/dataplane.md):
//
//   - legacy: POST python/execute with the identifier in the body;
//   - v1 (2024-02-02-preview, 2024-08-02-preview): code/execute,
//     files/upload, files, files/content/{name}, bodies in a "properties"
//     envelope with "$id" keys;
//   - v2 (2024-10-02-preview and later): executions, executions/{id},
//     files (multipart POST), files/{name}, files/{name}/content, session,
//     listSessions, metadata, top-level bodies.
//
// The handler routes by path, never by api-version; the api-version only
// picks the response shape on the few paths both v1 and v2 share (files,
// files/{name}) and the status of POST executions (202 before
// 2025-10-02-preview, 200 from it). Input is decoded tolerantly (aliases,
// case-insensitive enums and keys, "properties" wrapper or not, unknown
// fields ignored); output is exact per family.
//
// Every request is authenticated and then authorized by one hook
// (Config.Authorize) before anything else happens. Sessions come from
// Config.Sessions, which the pool controller implements: a per-session
// request acquires (or implicitly creates) the session for its identifier
// and then talks to the session's agent. CustomContainer pools get their
// requests proxied to the container's target port through the agent,
// except the .management/* routes, which tidepool answers.
//
// Identifiers are secrets of a sort (whoever knows one can use the
// session): the handler logs only a short hash of them.
package dataplane
