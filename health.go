// health.go — liveness and readiness (CONTRACT §4 health endpoints, §11).
//
// Readiness never touches the data volume from the request path: a background prober
// stats SE_DATA_DIR and SE_WAL_DIR (reads only, never writes) every healthProbeInterval
// and the endpoint reports the cached result. A probe that does not return within
// healthProbeTimeout (a stuck NFS mount) marks the filesystem failed, and no second
// probe is started while one is stuck, so a hung mount costs one goroutine, not one
// per request.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

const (
	healthProbeInterval = 5 * time.Second
	healthProbeTimeout  = 3 * time.Second
)

type healthCheck struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type healthChecker struct {
	store       *store
	dataDir     string
	walDir      string
	dependency  func() (healthy, checked bool) // critical dependency (JWKS); nil = none
	reconciling func() bool                    // nil = never
	stat        func(dir string) error         // nil = statDir; tests inject a stuck mount

	mu        sync.Mutex
	probing   bool
	probedAt  time.Time // when the last probe finished
	dataErr   error
	walErr    error
	startedAt time.Time // when the running probe started
}

func (h *healthChecker) run(ctx context.Context) {
	h.probe()
	every(ctx, healthProbeInterval, func() bool { h.probe(); return true })
}

// probe starts one filesystem probe unless one is still running (stuck), and waits for
// it at most healthProbeTimeout.
func (h *healthChecker) probe() {
	h.mu.Lock()
	if h.probing {
		h.mu.Unlock()
		return
	}
	h.probing = true
	h.startedAt = time.Now()
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		stat := h.stat
		if stat == nil {
			stat = statDir
		}
		dataErr := stat(h.dataDir)
		walErr := stat(h.walDir)
		h.mu.Lock()
		h.probing, h.probedAt, h.dataErr, h.walErr = false, time.Now(), dataErr, walErr
		h.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(healthProbeTimeout):
	}
}

func statDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("not a directory")
	}
	return nil
}

// readiness is the body of /health/ready: fail when the store cannot serve, degraded
// when the critical dependency (JWKS) is down but the store is fine.
func (h *healthChecker) readiness() (string, map[string]healthCheck) {
	h.mu.Lock()
	stuck := h.probing && time.Since(h.startedAt) > healthProbeTimeout
	neverProbed := h.probedAt.IsZero()
	dataErr, walErr := h.dataErr, h.walErr
	h.mu.Unlock()

	checks := map[string]healthCheck{}
	checks["filesystem"] = fsCheck(stuck, neverProbed, dataErr, "data directory")
	checks["wal"] = fsCheck(stuck, neverProbed, walErr, "WAL directory")
	if h.store.ready.Load() {
		checks["index"] = healthCheck{Status: "ok"}
	} else {
		checks["index"] = healthCheck{Status: "fail", Message: "WAL recovery or index build in progress"}
	}
	status := "ok"
	for _, c := range checks {
		if c.Status == "fail" {
			status = "fail"
		}
	}
	if h.dependency != nil {
		healthy, checked := h.dependency()
		switch {
		case !checked:
			checks["jwks"] = healthCheck{Status: "ok", Message: "not checked yet"}
		case healthy:
			checks["jwks"] = healthCheck{Status: "ok"}
		default:
			checks["jwks"] = healthCheck{Status: "degraded", Message: "JWKS endpoint unreachable; using the last key set"}
			if status == "ok" {
				status = "degraded"
			}
		}
	}
	return status, checks
}

func fsCheck(stuck, neverProbed bool, err error, what string) healthCheck {
	switch {
	case stuck:
		return healthCheck{Status: "fail", Message: what + " check timed out"}
	case neverProbed:
		return healthCheck{Status: "fail", Message: what + " not checked yet"}
	case err != nil:
		return healthCheck{Status: "fail", Message: what + " not accessible"}
	}
	return healthCheck{Status: "ok"}
}

// serviceStatus is the `status` of /api/v1/info.
func (h *healthChecker) serviceStatus() string {
	status, _ := h.readiness()
	switch {
	case !h.store.ready.Load():
		return "offline"
	case h.reconciling != nil && h.reconciling():
		return "maintenance"
	case status == "fail":
		return "offline"
	case status == "degraded":
		return "degraded"
	}
	return "online"
}
