package arm_test

import (
	"net/http"
	"testing"
)

// TestPoolOperationEndsAfterItsWrite: an operation reports Succeeded only
// once the write it stands for is provisioned, even when that write lands
// while the controller is finishing the reconcile of an earlier write.
func TestPoolOperationEndsAfterItsWrite(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.putPool("rg", "busy", stable, pythonBody(t, stable))

	a.ctlStore.mu.Lock()
	a.ctlStore.checkOps = true
	a.ctlStore.mu.Unlock()
	// The second PATCH lands after the controller has stored the first
	// one's Succeeded state and before it lists the operations to end.
	seconds := make(chan *response, 1)
	a.ctlStore.beforeNextList(func() {
		a.gate.hold()
		seconds <- a.doAsync("PATCH", poolPath("rg", "busy", stable), `{"properties":{"scaleConfiguration":{"readySessionInstances":4}}}`)
	})
	first := a.do("PATCH", poolPath("rg", "busy", stable), `{"tags":{"round":"1"}}`, nil)
	if first.Status != http.StatusAccepted {
		t.Fatalf("%s: want 202", first)
	}
	second := <-seconds
	if second.Status != http.StatusAccepted {
		t.Fatalf("%s: want 202", second)
	}
	a.gate.release()
	a.waitAsync(first.Header.Get("Azure-AsyncOperation"), "Succeeded")
	a.waitAsync(second.Header.Get("Azure-AsyncOperation"), "Succeeded")
	g := a.must(http.StatusOK, "GET", poolPath("rg", "busy", stable), nil)
	p := g.json(t)
	if got := jstring(p, "properties.provisioningState"); got != "Succeeded" {
		t.Errorf("%s: provisioningState %q, want Succeeded", g, got)
	}
	if got, _ := jget(p, "properties.scaleConfiguration.readySessionInstances"); got != 4.0 {
		t.Errorf("%s: readySessionInstances %v, want 4 from the second PATCH", g, got)
	}
	a.ctlStore.mu.Lock()
	defer a.ctlStore.mu.Unlock()
	for _, v := range a.ctlStore.violations {
		t.Error(v)
	}
}
