package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// patchable are the properties a PATCH may change; immutable are those it may
// only repeat. Anything else in a PATCH body is ignored, as unknown fields are.
var (
	patchable = []string{"scaleConfiguration", "secrets", "dynamicPoolConfiguration", "customContainerTemplate", "sessionNetworkConfiguration", "managedIdentitySettings"}
	immutable = []string{"environmentId", "containerType", "poolManagementType", "mcpServerSettings"}
)

// Patch applies a JSON merge patch (RFC 7396) of a PATCH body to a copy of
// the stored pool and returns the normalised result; the caller validates
// it. Property names match case-insensitively; arrays are replaced whole;
// null removes a member; tags are replaced whole. Changing location or a
// create-only property is an error; repeating its value (in any casing) is
// not. Secrets the patch does not mention keep their values.
//
// Lifecycle: a patch that changes lifecycleType drops the period of the old
// type unless it gives one; a legacy patch (executionType,
// cooldownPeriodInSeconds) merges into the legacy view of the stored
// lifecycle and replaces it. Identity: a type without UserAssigned drops the
// stored userAssignedIdentities unless the patch gives them.
func (p *SessionPool) Patch(body []byte) (*SessionPool, error) {
	var patch map[string]any
	if err := decodeJSON(body, &patch); err != nil {
		return nil, err
	}
	doc, err := toMap(p)
	if err != nil {
		return nil, err
	}
	var e errs
	// Keys in sorted order: errors come out the same way each time, and so
	// does the result when a body repeats a key in two casings.
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		v := patch[k]
		switch {
		case strings.EqualFold(k, "tags"):
			// Tags are replaced whole, not merged; a null tag is no tag.
			if m, ok := v.(map[string]any); ok {
				maps.DeleteFunc(m, func(_ string, tv any) bool { return tv == nil })
			}
			setFold(doc, "tags", v)
		case strings.EqualFold(k, "identity"):
			mergeIdentity(doc, v)
		case strings.EqualFold(k, "location"):
			if s, ok := v.(string); ok && !SameLocation(s, p.Location) {
				e.add("location", "The location of session pool '%s' is '%s' and cannot be changed to '%s'.", p.Name, p.Location, s)
			}
		case strings.EqualFold(k, "properties"):
			props, ok := v.(map[string]any)
			if !ok {
				if v != nil {
					e.add("properties", "properties must be an object.")
				}
				continue
			}
			patchProperties(&e, doc, props, p)
		}
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("marshal patched pool: %w", err)
	}
	out, err := DecodeSessionPool(data)
	if err != nil {
		return nil, err
	}
	out.Normalize()
	return out, nil
}

func patchProperties(e *errs, doc, props map[string]any, old *SessionPool) {
	stored, _ := getFold(doc, "properties").(map[string]any)
	if stored == nil {
		stored = map[string]any{}
		doc["properties"] = stored
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		v := props[k]
		switch {
		case containsFold(patchable, k):
			if !strings.EqualFold(k, "dynamicPoolConfiguration") {
				mergeInto(stored, k, v)
				continue
			}
			pd := asMap(v)
			if hasFold(pd, "executionType") || hasFold(pd, "cooldownPeriodInSeconds") {
				// A legacy-version patch merges into the legacy view of the
				// lifecycle; Normalize translates the result back.
				setFold(stored, k, legacyLifecycle(getFold(stored, k)))
			}
			// Read the type before merging: the merge updates the stored
			// maps in place.
			oldType := lifecycleType(getFold(stored, k))
			mergeInto(stored, k, v)
			dropStalePeriod(getFold(stored, k), v, oldType)
		case containsFold(immutable, k):
			if v == nil {
				continue
			}
			if !mergeKeeps(getFold(stored, k), v) {
				e.add("properties."+canonicalKey(k), "%s cannot be changed by PATCH on session pool '%s'.", canonicalKey(k), old.Name)
			}
		}
	}
}

// lifecycleType returns dynamicPoolConfiguration.lifecycleConfiguration.lifecycleType.
func lifecycleType(dpc any) string {
	t, _ := getFold(asMap(getFold(asMap(dpc), "lifecycleConfiguration")), "lifecycleType").(string)
	return t
}

// legacyLifecycle returns a stored dynamicPoolConfiguration in the legacy
// (before 2025-01-01) shape: executionType Timed with its cooldown, or
// nothing for OnContainerExit, which that shape cannot express.
func legacyLifecycle(dpc any) map[string]any {
	out := map[string]any{}
	if strings.EqualFold(lifecycleType(dpc), LifecycleTimed) {
		out["executionType"] = LifecycleTimed
		lc := asMap(getFold(asMap(dpc), "lifecycleConfiguration"))
		if c := getFold(lc, "cooldownPeriodInSeconds"); c != nil {
			out["cooldownPeriodInSeconds"] = c
		}
	}
	return out
}

// dropStalePeriod removes the period that belongs to the other lifecycle type
// when a patch switches lifecycleType away from oldType without saying what
// becomes of it, so that "switch to OnContainerExit with maxAlive N" works as
// users expect.
func dropStalePeriod(merged, patch any, oldType string) {
	lc, _ := getFold(asMap(merged), "lifecycleConfiguration").(map[string]any)
	plc, _ := getFold(asMap(patch), "lifecycleConfiguration").(map[string]any)
	if lc == nil || plc == nil {
		return
	}
	newType, _ := getFold(plc, "lifecycleType").(string)
	if newType == "" || strings.EqualFold(newType, oldType) {
		return
	}
	for _, k := range []string{"cooldownPeriodInSeconds", "maxAlivePeriodInSeconds"} {
		if !hasFold(plc, k) {
			deleteFold(lc, k)
		}
	}
}

// mergeIdentity merges an identity patch. When the merged type no longer
// includes UserAssigned and the patch does not mention
// userAssignedIdentities, the stored ones are dropped: switching to
// SystemAssigned or None removes them, as in ARM.
func mergeIdentity(doc map[string]any, patch any) {
	mergeInto(doc, "identity", patch)
	id := asMap(getFold(doc, "identity"))
	if id == nil || hasFold(asMap(patch), "userAssignedIdentities") {
		return
	}
	t, _ := getFold(id, "type").(string)
	if c := canonicalIdentityType(t); c == IdentitySystemAssigned || c == IdentityNone {
		deleteFold(id, "userAssignedIdentities")
	}
}

// mergeInto merges patch into target[key] per RFC 7396.
func mergeInto(target map[string]any, key string, patch any) {
	pm, ok := patch.(map[string]any)
	if !ok {
		setFold(target, key, patch) // scalars, arrays and null replace
		return
	}
	cur, ok := getFold(target, key).(map[string]any)
	if !ok {
		cur = map[string]any{}
	}
	for _, k := range slices.Sorted(maps.Keys(pm)) {
		mergeInto(cur, k, pm[k])
	}
	setFold(target, key, cur)
}

func toMap(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("unmarshal: %w", err)
	}
	return m, nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// keyFold returns the key of m equal to k ignoring case, or k.
func keyFold(m map[string]any, k string) string {
	if _, ok := m[k]; ok {
		return k
	}
	for mk := range m {
		if strings.EqualFold(mk, k) {
			return mk
		}
	}
	return k
}

func getFold(m map[string]any, k string) any { return m[keyFold(m, k)] }

func hasFold(m map[string]any, k string) bool { _, ok := m[keyFold(m, k)]; return ok }

func deleteFold(m map[string]any, k string) { delete(m, keyFold(m, k)) }

// setFold sets m[k] under the existing key's casing; nil deletes.
func setFold(m map[string]any, k string, v any) {
	k = keyFold(m, k)
	if v == nil {
		delete(m, k)
		return
	}
	m[k] = v
}

func containsFold(list []string, k string) bool {
	return slices.ContainsFunc(list, func(c string) bool { return strings.EqualFold(c, k) })
}

// canonicalKey returns the schema casing of a patchable or immutable key.
func canonicalKey(k string) string {
	for _, list := range [][]string{patchable, immutable} {
		for _, c := range list {
			if strings.EqualFold(c, k) {
				return c
			}
		}
	}
	return ""
}

// mergeKeeps reports whether merging patch into the stored value changes
// nothing: the patch repeats what is stored, in full or in part. Strings
// compare without case (enums and ids are case-insensitive), and so do keys.
func mergeKeeps(stored, patch any) bool {
	pm, ok := patch.(map[string]any)
	if !ok {
		return sameValue(stored, patch)
	}
	sm, ok := stored.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range pm {
		if v == nil {
			if hasFold(sm, k) {
				return false
			}
			continue
		}
		if !mergeKeeps(getFold(sm, k), v) {
			return false
		}
	}
	return true
}

// sameValue compares two decoded JSON values other than objects, strings
// without case.
func sameValue(a, b any) bool {
	if as, ok := a.(string); ok {
		bs, ok := b.(string)
		return ok && strings.EqualFold(as, bs)
	}
	return reflect.DeepEqual(a, b)
}

// SameLocation compares Azure locations as ARM does: "East US" is "eastus".
func SameLocation(a, b string) bool {
	return NormalizeLocation(a) == NormalizeLocation(b)
}

// NormalizeLocation lower-cases a location and removes its spaces.
func NormalizeLocation(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
}
