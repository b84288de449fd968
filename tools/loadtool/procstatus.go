// procstatus.go — the server's memory as the kernel reports it.
//
// /proc/<pid>/status holds one "Key:\tvalue" per line; the memory lines are
//
//	VmHWM:	   12345 kB     peak resident set size (since start or the last reset)
//	VmRSS:	   11111 kB     resident set size now
//
// where "kB" means KiB. Writing "5" to /proc/<pid>/clear_refs resets VmHWM to the
// current RSS (Linux ≥ 4.0), which is how a phase measures its own peak.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memInfo is the resident memory of a process, in bytes.
type memInfo struct {
	RSS  int64 // VmRSS
	Peak int64 // VmHWM
}

// parseProcStatus extracts VmRSS and VmHWM from the text of /proc/<pid>/status. Both
// must be present, well-formed and in kB.
func parseProcStatus(text string) (memInfo, error) {
	var m memInfo
	var haveRSS, havePeak bool
	for line := range strings.SplitSeq(text, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		n, err := parseKB(value)
		if err != nil {
			return memInfo{}, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmRSS" {
			m.RSS, haveRSS = n, true
		} else {
			m.Peak, havePeak = n, true
		}
	}
	if !haveRSS || !havePeak {
		return memInfo{}, errors.New("VmRSS or VmHWM missing")
	}
	return m, nil
}

// parseKB parses "   12345 kB" into bytes.
func parseKB(value string) (int64, error) {
	fields := strings.Fields(value)
	if len(fields) != 2 || fields[1] != "kB" {
		return 0, fmt.Errorf("want \"<n> kB\", got %q", strings.TrimSpace(value))
	}
	n, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return 0, fmt.Errorf("bad size %q", fields[0])
	}
	return n << 10, nil
}

// readMem reads the memory lines of process pid.
func readMem(pid int) (memInfo, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memInfo{}, fmt.Errorf("read process status: %w", err)
	}
	return parseProcStatus(string(data))
}

// resetPeak makes VmHWM of pid start again from its current RSS.
func resetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}
