// Package arm serves the management API in Azure Resource Manager's shape:
// subscriptions, resource groups, Microsoft.App session pools and managed
// environments, provider metadata and long-running-operation status.
//
// It follows ARM's conventions (reference/management-api.md §4 and §7):
// routing by path with case-insensitive keywords and names, the api-version
// rules, the {"error":{...}} envelope with x-ms-error-code, x-ms-request-id
// and x-ms-correlation-request-id on every response, paging with nextLink and
// $skipToken, and the LRO headers the Azure SDKs and the az CLI poll.
//
// Handlers return errors; writeError sends them. Storage goes through a
// store.Store; provisioning work goes to a Reconciler (the pool controller),
// which moves resources to a terminal provisioning state and completes their
// operations.
package arm
