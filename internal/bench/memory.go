package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sandboxState is the part of a sandbox's state.json (written by the OCI
// runtime and by sandboxtest.ProcessRuntime under their root, one
// directory per sandbox) that density reads.
type sandboxState struct {
	ID      string            `json:"id"`
	Labels  map[string]string `json:"labels"`
	Pid     int               `json:"pid"`
	Cgroups map[string]string `json:"cgroups"`
}

// poolSandboxes reads the state of every sandbox under root whose pool
// label is key.
func poolSandboxes(root, key string) ([]sandboxState, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []sandboxState
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, e.Name(), "state.json"))
		if err != nil {
			continue // not a sandbox, or going away
		}
		var st sandboxState
		if json.Unmarshal(data, &st) != nil {
			continue
		}
		if strings.EqualFold(st.Labels["tidepool.pool"], key) {
			out = append(out, st)
		}
	}
	return out, nil
}

// sandboxMemory is what one sandbox uses, in bytes.
type sandboxMemory struct {
	method     string // "cgroup" or "pss"
	usage, rss int64
}

// measureSandbox reads a sandbox's memory: from its memory cgroup when it
// has one, else the Pss and Rss of its process tree.
func measureSandbox(st sandboxState) (sandboxMemory, error) {
	if dir, ok := st.Cgroups["memory"]; ok {
		usage, err := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
		if err != nil {
			return sandboxMemory{}, err
		}
		stat, err := readKV(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return sandboxMemory{}, err
		}
		return sandboxMemory{"cgroup", usage, stat["total_rss"]}, nil
	}
	if dir, ok := st.Cgroups[""]; ok {
		usage, err := readInt(filepath.Join(dir, "memory.current"))
		if err != nil {
			return sandboxMemory{}, err
		}
		stat, err := readKV(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return sandboxMemory{}, err
		}
		return sandboxMemory{"cgroup", usage, stat["anon"]}, nil
	}
	if st.Pid > 0 {
		pss, rss, err := treeMemory(st.Pid)
		return sandboxMemory{"pss", pss, rss}, err
	}
	return sandboxMemory{}, fmt.Errorf("sandbox %s: neither a memory cgroup nor a pid", st.ID)
}

// treeMemory sums Pss and Rss over pid and its descendants.
func treeMemory(pid int) (pss, rss int64, err error) {
	for _, p := range processTree(pid) {
		kv, err := readKV(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			if p == pid {
				return 0, 0, err
			}
			continue // exited meanwhile
		}
		pss += kv["Pss:"] << 10
		rss += kv["Rss:"] << 10
	}
	return pss, rss, nil
}

// processTree returns pid and its descendants.
func processTree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, directChildren(out[i])...)
	}
	return out
}

// directChildren returns the children of pid (through the children lists
// of its threads).
func directChildren(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// readKV reads "key value [unit]" lines (memory.stat, smaps_rollup).
func readKV(path string) (map[string]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			out[f[0]] = v
		}
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no values")
	}
	return out, sc.Err()
}
