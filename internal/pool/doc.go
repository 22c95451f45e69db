// Package pool is the pool controller: it takes session pools, and the
// resource groups that hold them, to their terminal provisioning state and
// completes the long-running operations clients poll.
//
// Reconciliation is level-based: Enqueue names a resource, and Reconcile
// reads its current state from the store and converges, so a missed or
// repeated event, or a restart in the middle of work, changes nothing. At
// start, Run re-enqueues every resource with unfinished work.
//
// States of a session pool:
//
//	InProgress → Succeeded   configuration stored (and, once sandboxes exist,
//	                         the warm set is up)
//	InProgress → Failed      sandboxes cannot start
//	Deleting   → (gone)      its sandboxes are destroyed, then the record
//
// A resource group in Deleting loses every resource in it, then itself.
package pool
