// Package server assembles tidepool serve: it opens the store, bootstraps
// the identity (tenant, subscription, signing key, admin principal), and
// serves the token endpoints, the management API and the health checks on
// one listener while the pool controller runs beside them.
package server
