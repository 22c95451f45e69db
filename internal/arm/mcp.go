package arm

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/mcpkeys"
	"github.com/tidepool-dev/tidepool/internal/model"
)

// mcpCredential is McpServerCredential, the answer of both MCP actions.
type mcpCredential struct {
	APIKey string `json:"apiKey"`
}

// mcpCredentials answers POST {pool}/fetchMcpServerCredentials (rotate
// false) and POST {pool}/rotateMcpServerCredentials (rotate true) for the
// stored pool p whose MCP server is enabled: 200 {"apiKey": "..."}. Fetch
// returns the pool's current key, creating the first one; rotate replaces
// it, and the old key stops working at once. The key is never logged.
func (s *Server) mcpCredentials(w http.ResponseWriter, r *http.Request, id *model.ResourceID, p *model.SessionPool, rotate bool) error {
	ctx := r.Context()
	if p.Properties.ProvisioningState == model.StateDeleting {
		return beingDeleted(p.Name)
	}
	if strings.EqualFold(p.Properties.ContainerType, model.ContainerTypeCustomContainer) {
		// As on Azure: custom containers serve their own paths, /mcp too.
		return badRequest("SessionMCPServerNotEnabled", "Session pool '%s' is a CustomContainer pool, which has no platform MCP server.", p.Name)
	}
	if !mcpkeys.KeysAccepted(p.Properties.McpServerSettings) {
		return badRequest("SessionMCPServerApiKeyDisabled",
			"The MCP server of session pool '%s' does not accept API keys (mcpServerSettings.isMcpServerApiKeyDisabled is true); call it with a bearer token instead.", p.Name)
	}
	pid := PoolID(id.Subscription, id.ResourceGroup, id.Names[0])
	keys := mcpkeys.New(s.st)
	var (
		key string
		err error
	)
	if rotate {
		key, err = keys.Rotate(ctx, pid)
	} else {
		key, err = keys.Fetch(ctx, pid)
	}
	if errors.Is(err, mcpkeys.ErrPoolNotFound) {
		return notFound(model.SessionPoolType, id.Names[0], id.ResourceGroup)
	}
	if err != nil {
		return err
	}
	if rotate {
		s.log.InfoContext(ctx, "MCP server key rotated", "pool", pid)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, mcpCredential{APIKey: key})
	return nil
}

// dropMcpKey deletes a pool's MCP key when the pool is being deleted. A
// failure is only logged: the key record names the pool's creation, so it
// never opens a pool created later under the same name.
func (s *Server) dropMcpKey(r *http.Request, poolID string) {
	if err := mcpkeys.New(s.st).Delete(r.Context(), poolID); err != nil {
		s.log.WarnContext(r.Context(), "delete MCP server key", "pool", poolID, "err", err)
	}
}
