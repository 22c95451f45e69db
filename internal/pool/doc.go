// Package pool is the pool controller: it takes session pools, and the
// resource groups that hold them, to their terminal provisioning state and
// completes the long-running operations clients poll; with a sandbox
// runtime (WithRuntime) it also runs the pools' sandboxes: the warm sets,
// the sessions bound to callers' identifiers, and their lifecycle.
//
// Reconciliation is level-based: Enqueue names a resource, and Reconcile
// reads its current state from the store and converges, so a missed or
// repeated event, or a restart in the middle of work, changes nothing. At
// start, Run re-enqueues every resource with unfinished work.
//
// States of a session pool:
//
//	InProgress → Succeeded   configuration stored and the ready set of the
//	                         current template complete (once)
//	InProgress → Failed      sandboxes cannot start (ProvisioningError says
//	                         why; the operation fails with it)
//	Deleting   → (gone)      its sandboxes and session records are
//	                         destroyed, then the record
//
// A resource group in Deleting loses every resource in it, then itself;
// its pools go through their own deletion.
//
// # Sandboxes of a pool
//
// In memory, per pool: ready (warm, unclaimed sandboxes of the current
// template), claimed (identifier → session), claiming (claims in flight,
// counted as claimed), starting (warm starts in flight, by template) and
// stopping. Invariants:
//
//   - claimed ≤ maxConcurrentSessions: a new identifier beyond it gets
//     ErrPoolFull; a scale down below the claimed count ends no session;
//   - the controller keeps ready = min(readySessionInstances, max − claimed),
//     counting starts in flight toward it and destroying ready sandboxes
//     beyond it; it refills after every claim and every end;
//   - one identifier maps to at most one sandbox: concurrent first requests
//     for an identifier share one claim;
//   - a template change (a hash of the session-relevant properties) starts
//     a new ready set; claimed sessions keep their sandboxes.
//
// A claim takes the oldest ready sandbox in O(1) and binds it with the
// agent's /init; with none ready it starts one ("cold"). Every Acquire and
// Lookup counts as activity: the reaper, driven by the controller's Clock,
// ends Timed sessions cooldownPeriodInSeconds after their last activity,
// any session maxAlivePeriodInSeconds after its creation, and
// OnContainerExit sessions of custom containers when the container exits.
//
// # Locking
//
// Controller.mu guards all in-memory state; it is never held across a
// store, runtime or agent call. flushMu serializes writes and deletes of
// session records (lock order: flushMu, then mu).
//
// # Persistence and restart
//
// A session is stored as a record of type SessionRecordType, scoped under
// its pool (identifier, sandbox id, times). New bindings are written by a
// background flusher right after the claim; last activity is kept in memory
// and written in batches every reap interval and when Run returns, never
// per request. Sandboxes outlive the server process. At start Run lists
// the runtime's sandboxes and adopts them: a bound sandbox (its agent
// reports the identifier) becomes its session again with its state, a warm
// one of a pool's current template rejoins the ready set, and every other
// one (no pool, pool deleting, old template, unhealthy agent) is destroyed.
// Records whose sandbox is gone are deleted.
//
// # Metrics
//
// With WithMetrics the controller counts claims, cold starts, failed
// starts and ended sessions, and times claims and starts; the per-pool
// gauges (ready, claimed, starting, stopping) are read from the in-memory
// state at scrape time (Stats). Series are labelled by the pool's
// lower-cased id, never by an identifier.
//
// Identifiers are callers' secrets: logs name them by a short hash.
package pool
