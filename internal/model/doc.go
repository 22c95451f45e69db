// Package model holds the resources tidepool serves (session pools, resource
// groups, managed environments) in one internal shape, and translates them to
// and from the JSON shape of each supported api-version.
//
// A session pool is stored as the superset of every version
// (2025-10-02-preview). Decoding is tolerant, as real clients need: property
// names match case-insensitively, explicit nulls count as absent, unknown
// properties are ignored, and enum values match case-insensitively and are
// stored in their canonical casing. Rendering is exact: each version shows the
// fields it defines, in its own shape, and never a secret value.
//
// The package is a leaf: it imports nothing from tidepool.
package model
