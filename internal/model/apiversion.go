package model

import (
	"regexp"
	"slices"
	"strings"
)

// APIVersion is a session pool api-version, one of SessionPoolVersions.
type APIVersion string

// The session pool api-versions, oldest first.
const (
	V20240202Preview APIVersion = "2024-02-02-preview"
	V20240802Preview APIVersion = "2024-08-02-preview"
	V20241002Preview APIVersion = "2024-10-02-preview"
	V20250101        APIVersion = "2025-01-01"
	V20250202Preview APIVersion = "2025-02-02-preview"
	V20250701        APIVersion = "2025-07-01"
	V20251002Preview APIVersion = "2025-10-02-preview"
	V20260101        APIVersion = "2026-01-01"
)

// SessionPoolVersions lists every supported session pool api-version, oldest first.
var SessionPoolVersions = []APIVersion{
	V20240202Preview, V20240802Preview, V20241002Preview, V20250101,
	V20250202Preview, V20250701, V20251002Preview, V20260101,
}

// LatestSessionPoolVersion is the newest stable version; generic reads use it.
const LatestSessionPoolVersion = V20260101

var apiVersionFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-(preview|alpha|beta|rc|privatepreview))?$`)

// WellFormedAPIVersion reports whether s has ARM's api-version format:
// YYYY-MM-DD with an optional -preview, -alpha, -beta, -rc or -privatepreview.
func WellFormedAPIVersion(s string) bool {
	return apiVersionFormat.MatchString(strings.ToLower(s))
}

// ParseSessionPoolVersion returns the supported version equal to s
// (case-insensitive) and whether there is one.
func ParseSessionPoolVersion(s string) (APIVersion, bool) {
	i := slices.IndexFunc(SessionPoolVersions, func(v APIVersion) bool { return strings.EqualFold(string(v), s) })
	if i < 0 {
		return "", false
	}
	return SessionPoolVersions[i], true
}

// legacyLifecycle: before 2025-01-01 the lifecycle is executionType + cooldownPeriodInSeconds.
func (v APIVersion) legacyLifecycle() bool { return v < V20250101 }

// registryServer: 2024-02-02-preview names the registry host registryServer and has no identity.
func (v APIVersion) registryServer() bool { return v == V20240202Preview }

// hasIdentity: identity and managedIdentitySettings arrive in 2024-10-02-preview.
func (v APIVersion) hasIdentity() bool { return v >= V20241002Preview }

// hasProbes: only the 2025-02-02-preview and 2025-10-02-preview shapes carry probes.
func (v APIVersion) hasProbes() bool { return v == V20250202Preview || v == V20251002Preview }

// hasMCP: MCP server settings are in the 2025-10-02-preview spec; the MCP
// tutorials create and read them at 2025-02-02-preview, which the service
// accepts, so that version shows them too.
func (v APIVersion) hasMCP() bool { return v == V20250202Preview || v == V20251002Preview }

// hasTemplateStatus: templateUpdateStatus exists only in 2025-10-02-preview.
func (v APIVersion) hasTemplateStatus() bool { return v == V20251002Preview }

// PatchesTags reports whether PATCH at this version carries tags.
func (v APIVersion) PatchesTags() bool { return v >= V20250101 }
