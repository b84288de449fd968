// telemetry.go — the SE's own metric families (CONTRACT §7) and the request middleware
// that feeds them: request id, per-request log line, idle deadlines for slow links.
//
// Label bounds (CONTRACT §11): `path` is the route pattern, or "unmatched" for any
// request no route took; `method` is one of the methods the API knows, else "OTHER";
// `status` is a 3-digit code. No label value comes from a raw URL or a file id.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

type seMetrics struct {
	registry        *metricsRegistry
	requests        *counterVec
	requestDuration *histogramVec
	operations      *counterVec
	authFailures    *counter
	corruptReads    *counter
	gcRuns          *counter
	gcFilesDeleted  *counter
	gcDuration      *histogram
	reconcileRuns   *counter
	reconcileIssues *counterVec
	reconcileTime   *histogram
}

// maintenanceBuckets suit runs from milliseconds (empty store) to hours (terabytes).
var maintenanceBuckets = []float64{0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600}

func newSEMetrics(st *store, version string, started time.Time) *seMetrics {
	reg := newMetricsRegistry()
	registerRuntimeMetrics(reg, started, version)
	m := &seMetrics{
		registry: reg,
		requests: reg.CounterVec("se_http_requests_total", "HTTP requests by method, route pattern and status code.", "method", "path", "status"),
		requestDuration: reg.HistogramVec("se_http_request_duration_seconds", "HTTP request duration by method and route pattern, body transfer included.",
			defaultLatencyBuckets, "method", "path"),
		operations:      reg.CounterVec("se_operations_total", "Storage operations by operation and result.", "operation", "result"),
		authFailures:    reg.CounterVec("se_auth_failures_total", "Requests rejected for a missing or invalid bearer token.").With(),
		corruptReads:    reg.CounterVec("se_download_checksum_mismatches_total", "Downloads aborted because the bytes on disk did not match their checksum.").With(),
		gcRuns:          reg.CounterVec("se_gc_runs_total", "Garbage collection runs.").With(),
		gcFilesDeleted:  reg.CounterVec("se_gc_files_deleted_total", "Files whose bytes and sidecar garbage collection removed.").With(),
		gcDuration:      reg.HistogramVec("se_gc_duration_seconds", "Duration of garbage collection runs.", maintenanceBuckets).With(),
		reconcileRuns:   reg.CounterVec("se_reconcile_runs_total", "Reconciliation runs.").With(),
		reconcileIssues: reg.CounterVec("se_reconcile_issues_total", "Issues found by reconciliation, by type.", "type"),
		reconcileTime:   reg.HistogramVec("se_reconcile_duration_seconds", "Duration of reconciliation runs.", maintenanceBuckets).With(),
	}
	reg.GaugeVecFunc("se_files_total", "Files in the index by status.", []string{"status"}, func(emit func(float64, ...string)) {
		c := st.index.Counts()
		emit(float64(c.Active), "active")
		emit(float64(c.Expired), "expired")
		emit(float64(c.Deleted), "deleted")
	})
	reg.GaugeVecFunc("se_storage_bytes", "Storage capacity: total (SE_MAX_CAPACITY), used (active files) and available.", []string{"type"}, func(emit func(float64, ...string)) {
		total, used := st.capacity.max, st.index.ActiveBytes()
		emit(float64(total), "total")
		emit(float64(used), "used")
		emit(float64(max(0, total-used)), "available")
	})
	reg.GaugeFunc("se_upload_reserved_bytes", "Capacity reserved by uploads in flight.", func() float64 {
		return float64(st.capacity.reservedBytes())
	})
	reg.GaugeVecFunc("se_mode_info", "The current operating mode (1 for the current one).", []string{"mode"}, func(emit func(float64, ...string)) {
		cur := st.mode.current()
		for _, md := range []seMode{modeEdit, modeRW, modeRO, modeAR} {
			v := 0.0
			if md == cur {
				v = 1
			}
			emit(v, string(md))
		}
	})
	reg.GaugeFunc("se_ready", "1 when WAL recovery and the index build are done.", func() float64 {
		if st.ready.Load() {
			return 1
		}
		return 0
	})
	return m
}

// operation counts one storage operation by its outcome.
func (m *seMetrics) operation(op string, err error) {
	m.operations.With(op, operationResult(err)).Inc()
}

func operationResult(err error) string {
	var ve *validationError
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return "success"
	case errors.As(err, &ve):
		return "invalid"
	case errors.Is(err, errNotFound):
		return "not_found"
	case errors.Is(err, errModeNotAllowed):
		return "mode_not_allowed"
	case errors.Is(err, errFileTooLarge), errors.As(err, &mbe):
		return "too_large"
	case errors.Is(err, errStorageFull):
		return "storage_full"
	case errors.Is(err, errBodyRead):
		return "client_error"
	}
	return "error"
}

// ---- request middleware ----

// requestInfo travels in the request context so inner layers can add to the log line.
type requestInfo struct {
	id      string
	mu      sync.Mutex
	subject string
}

func requestID(ctx context.Context) string {
	if ri, ok := ctx.Value(requestIDKey).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

func setLogSubject(ctx context.Context, sub string) {
	if ri, ok := ctx.Value(requestIDKey).(*requestInfo); ok {
		ri.mu.Lock()
		ri.subject = sub
		ri.mu.Unlock()
	}
}

// validRequestID accepts a caller's X-Request-ID only if it is short and plain, so it
// can go into logs and headers as is.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isNameByte(c) && c != '.' && c != '_' && c != ':' {
			return false
		}
	}
	return true
}

// defaultBodyIdleTimeout is how long a request or response body may make no progress
// before the connection is dropped. There is no whole-transfer deadline: a multi-GB
// transfer over a slow WAN link finishes as long as bytes keep moving (CONTRACT §11).
const defaultBodyIdleTimeout = 2 * time.Minute

var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func (s *server) bodyIdleTimeout() time.Duration {
	if s.idleTimeout > 0 {
		return s.idleTimeout
	}
	return defaultBodyIdleTimeout
}

// ServeHTTP is the outermost handler: request id, idle deadlines, dispatch, then one
// log line and the request metrics.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	start := time.Now()
	ri := &requestInfo{id: r.Header.Get("X-Request-ID")}
	if !validRequestID(ri.id) {
		ri.id = uuid.NewString()
	}
	w.Header().Set("X-Request-ID", ri.id)
	rc := http.NewResponseController(w)
	// The server never clears a write deadline between requests on a kept-alive
	// connection, so each request sets its own before anything is written.
	idle := s.bodyIdleTimeout()
	rc.SetWriteDeadline(time.Now().Add(idle))
	rec := &statusRecorder{ResponseWriter: w, rc: rc, idle: idle}
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey, ri))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: idle}
	}
	s.mux.ServeHTTP(rec, r)

	route := routeLabel(r.Pattern)
	method := r.Method
	if !knownMethods[method] {
		method = "OTHER"
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	s.metrics.requests.With(method, route, strconv.Itoa(status)).Inc()
	s.metrics.requestDuration.With(method, route).Observe(elapsed.Seconds())
	ri.mu.Lock()
	sub := ri.subject
	ri.mu.Unlock()
	level := slog.LevelInfo
	if route == "/health/live" || route == "/health/ready" || route == "/metrics" {
		level = slog.LevelDebug
	}
	s.log.Log(r.Context(), level, "request", "method", r.Method, "route", route, "status", status,
		"bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds())/1000, "sub", sub, "request_id", ri.id)
}

// routeLabel is the `path` label: the route pattern without its method ("GET
// /api/v1/files/{file_id}" → "/api/v1/files/{file_id}"), or "unmatched".
func routeLabel(pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern == "" || pattern == "/" {
		return "unmatched"
	}
	return pattern
}

// statusRecorder captures the status and body size and extends the write deadline
// while the response makes progress.
type statusRecorder struct {
	http.ResponseWriter
	rc     *http.ResponseController
	idle   time.Duration
	status int
	bytes  int64
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// idleBody extends the read deadline before every read of the request body.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.ReadCloser.Read(p)
}
