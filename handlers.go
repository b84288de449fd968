// handlers.go — the HTTP API of CONTRACT §4 on one http.ServeMux.
//
// Handlers are thin: they authenticate, check the mode where the contract orders it,
// parse and bound the request, call the store and write JSON. Every error leaves
// through writeError as {"error":{"code","message"}} with a message that never names a
// path, an address or a raw error.
//
// Order of checks on every protected route: authentication (401) → scope (403) →
// mode (409, where the contract puts it before the lookup) → request validation (400)
// → the operation.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	scopeFilesRead    = "files:read"
	scopeFilesWrite   = "files:write"
	scopeStorageWrite = "storage:write"

	maxJSONBody      = 256 << 10 // PATCH and mode bodies: 100 tags × 256 chars fit
	uploadOverhead   = 256 << 10 // multipart framing + description + tags beside the file
	maxTagsPartBytes = 192 << 10
	maxOtherPart     = 64 << 10
	maxListLimit     = 1000
	defaultListLimit = 100
	serviceName      = "storage-element"
)

// server is the HTTP face of one SE process.
type server struct {
	cfg       *Config
	store     *store
	verifier  *tokenVerifier
	metrics   *seMetrics
	health    *healthChecker
	reconcile *reconciler
	log       *slog.Logger
	version   string
	now       func() time.Time
	mux       *http.ServeMux
	// idleTimeout overrides defaultBodyIdleTimeout (tests).
	idleTimeout time.Duration
	// election and forward are set in replicated mode only.
	election *election
	forward  *forwarder
	// inflight counts running handlers, so shutdown can wait for interrupted uploads
	// to finish rolling back after their connections were closed.
	inflight sync.WaitGroup
}

// routes registers every route of the API; tools/openapicheck reads these patterns.
func (s *server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", s.handleLive)
	mux.HandleFunc("GET /health/ready", s.handleReady)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.HandleFunc("GET /api/v1/info", s.handleInfo)
	mux.HandleFunc("POST /api/v1/files/upload", s.authed(scopeFilesWrite, s.leaderOnly(s.handleUpload)))
	mux.HandleFunc("GET /api/v1/files", s.authed(scopeFilesRead, s.handleList))
	mux.HandleFunc("GET /api/v1/files/{file_id}", s.authed(scopeFilesRead, s.handleGetMetadata))
	mux.HandleFunc("PATCH /api/v1/files/{file_id}", s.authed(scopeFilesWrite, s.leaderOnly(s.handlePatch)))
	mux.HandleFunc("DELETE /api/v1/files/{file_id}", s.authed(scopeFilesWrite, s.leaderOnly(s.handleDelete)))
	mux.HandleFunc("GET /api/v1/files/{file_id}/download", s.authed(scopeFilesRead, s.handleDownload))
	mux.HandleFunc("POST /api/v1/mode/transition", s.authed(scopeStorageWrite, s.leaderOnly(s.handleModeTransition)))
	mux.HandleFunc("POST /api/v1/maintenance/reconcile", s.authed(scopeStorageWrite, s.leaderOnly(s.handleReconcile)))
	mux.HandleFunc("/", s.handleUnmatched)
	s.mux = mux
}

// ---- errors ----

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// jsonBuffers recycles response encoding buffers: a list page is about half a megabyte
// of JSON, and allocating it (and each of its growth steps) per request was most of the
// garbage a list request made, which at a large index means frequent, long GC cycles.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledJSON bounds the buffers kept in jsonBuffers.
const maxPooledJSON = 4 << 20

// writeJSON sends v as one line of JSON (json.Encoder ends it with a newline).
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledJSON {
			jsonBuffers.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"INTERNAL_ERROR","message":"internal error"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	var body errorBody
	body.Error.Code, body.Error.Message = code, message
	writeJSON(w, status, body)
}

// fail maps a store or validation error to its response. Unknown errors are logged
// with the request id and answered with a generic 500.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ve *validationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", ve.msg)
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, "NOT_FOUND", "file not found")
	case errors.Is(err, errModeNotAllowed):
		writeError(w, http.StatusConflict, "MODE_NOT_ALLOWED", "operation not allowed in mode "+string(s.store.mode.current()))
	case errors.Is(err, errFileTooLarge), errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE", fmt.Sprintf("file exceeds the maximum size of %d bytes", s.store.maxFileSize))
	case errors.Is(err, errStorageFull):
		writeError(w, http.StatusInsufficientStorage, "STORAGE_FULL", "not enough storage capacity for this file")
	case errors.Is(err, errNotReady):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "NOT_READY", "storage element is starting; retry shortly")
	case errors.Is(err, errNotWritable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "LEADER_UNKNOWN", "no replica accepts writes right now; retry shortly")
	case errors.Is(err, errReconcileInProgress):
		writeError(w, http.StatusConflict, "RECONCILE_IN_PROGRESS", "a reconciliation is already running")
	default:
		s.log.Error("request failed", "request_id", requestID(r.Context()), "method", r.Method, "route", r.Pattern, "err", err)
		writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "internal error")
	}
}

// handleUnmatched answers every request no route matched: 405 with Allow when the path
// exists under another method, else 404, both in the JSON envelope.
func (s *server) handleUnmatched(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed on this endpoint")
}

// ---- auth ----

type ctxKey int

const (
	claimsKey ctxKey = iota
	requestIDKey
)

func claimsFrom(ctx context.Context) *Claims {
	c, _ := ctx.Value(claimsKey).(*Claims)
	return c
}

// authed wraps a handler with bearer-token verification and a scope check. Every bad
// token gets the same 401 body; the reason goes to the debug log only.
func (s *server) authed(scope string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		var claims *Claims
		var err error
		if ok {
			claims, err = s.verifier.Verify(r.Context(), token)
		}
		if !ok || err != nil {
			s.log.Debug("token rejected", "request_id", requestID(r.Context()), "err", err)
			s.metrics.authFailures.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="storage-element"`)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "missing or invalid bearer token")
			return
		}
		setLogSubject(r.Context(), claims.Subject)
		if !claims.HasScope(scope) {
			writeError(w, http.StatusForbidden, "FORBIDDEN", "token lacks scope "+scope)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), claimsKey, claims)))
	}
}

func bearerToken(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}

// role is this process's place in a replica set.
func (s *server) role() replicaRole {
	if s.election == nil {
		return roleStandalone
	}
	return s.election.currentRole()
}

// leaderOnly sends a write to the leader when this process is a follower (after
// authentication, before any mode check: the leader's mode is the one that counts).
func (s *server) leaderOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.role() == roleFollower {
			s.forward.forward(w, r)
			return
		}
		next(w, r)
	}
}

// requireMode answers 409 and returns false when the current mode forbids op.
func (s *server) requireMode(w http.ResponseWriter, op operation) bool {
	mode := s.store.mode.current()
	if mode.allows(op) {
		return true
	}
	writeError(w, http.StatusConflict, "MODE_NOT_ALLOWED", "operation not allowed in mode "+string(mode))
	return false
}

func pathFileID(r *http.Request) (uuid.UUID, error) {
	id, err := parseFileID(r.PathValue("file_id"))
	if err != nil {
		return uuid.UUID{}, invalidf("file_id must be a UUID")
	}
	return id, nil
}

// ---- health, info, metrics ----

func (s *server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "timestamp": s.now().UTC().Format(time.RFC3339), "version": s.version, "service": serviceName,
	})
}

func (s *server) handleReady(w http.ResponseWriter, r *http.Request) {
	status, checks := s.health.readiness()
	code := http.StatusOK
	if status == "fail" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{
		"status": status, "timestamp": s.now().UTC().Format(time.RFC3339), "version": s.version,
		"service": serviceName, "checks": checks,
	})
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.registry.ServeHTTP(w, r)
}

type storageInfo struct {
	StorageID         string      `json:"storage_id"`
	Mode              seMode      `json:"mode"`
	Status            string      `json:"status"`
	Version           string      `json:"version"`
	Capacity          capacityDoc `json:"capacity"`
	ReplicaMode       string      `json:"replica_mode"`
	Role              string      `json:"role"`
	AllowedOperations []operation `json:"allowed_operations"`
}

type capacityDoc struct {
	TotalBytes     int64 `json:"total_bytes"`
	UsedBytes      int64 `json:"used_bytes"`
	AvailableBytes int64 `json:"available_bytes"`
}

func (s *server) handleInfo(w http.ResponseWriter, r *http.Request) {
	mode := s.store.mode.current()
	total, used := s.store.capacity.max, s.store.index.ActiveBytes()
	writeJSON(w, http.StatusOK, storageInfo{
		StorageID: s.cfg.StorageID, Mode: mode, Status: s.health.serviceStatus(), Version: s.version,
		Capacity:    capacityDoc{TotalBytes: total, UsedBytes: used, AvailableBytes: max(0, total-used)},
		ReplicaMode: s.cfg.ReplicaMode, Role: s.role().String(), AllowedOperations: s.allowedOperations(mode),
	})
}

// allowedOperations: what the mode allows, less the writes nobody can take right now
// (a follower that knows no leader, or a leader that is not writable yet).
func (s *server) allowedOperations(mode seMode) []operation {
	canWrite := true
	switch s.role() {
	case roleFollower:
		_, canWrite = s.election.leaderAddress()
	case roleLeader, roleStandalone:
		canWrite = s.store.isWritable()
	}
	ops := []operation{}
	for _, op := range allOperations {
		isWrite := op == opUpload || op == opUpdate || op == opDelete
		if mode.allows(op) && (canWrite || !isWrite) {
			ops = append(ops, op)
		}
	}
	return ops
}

// ---- files ----

type fileListResponse struct {
	Items   []FileMetadata `json:"items"`
	Total   int            `json:"total"`
	Limit   int            `json:"limit"`
	Offset  int            `json:"offset"`
	HasMore bool           `json:"has_more"`
}

// fileListPage is fileListResponse as the handler encodes it (same JSON).
type fileListPage struct {
	Items   []*FileMetadata `json:"items"`
	Total   int             `json:"total"`
	Limit   int             `json:"limit"`
	Offset  int             `json:"offset"`
	HasMore bool            `json:"has_more"`
}

func (s *server) handleList(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.RawQuery)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	recs, total, err := s.store.list(q.filter, q.offset, q.limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Items point at the records' own metadata (immutable once published) instead of
	// copying a thousand structs per page.
	resp := fileListPage{Items: make([]*FileMetadata, 0, len(recs)), Total: total, Limit: q.limit, Offset: q.offset}
	for _, rec := range recs {
		resp.Items = append(resp.Items, &rec.meta)
	}
	resp.HasMore = q.offset+len(recs) < total
	writeJSON(w, http.StatusOK, resp)
}

type listQuery struct {
	limit, offset int
	filter        statusFilter
}

// parseListQuery accepts exactly limit, offset and status, each at most once.
func parseListQuery(raw string) (listQuery, error) {
	q := listQuery{limit: defaultListLimit, filter: filterAll}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, invalidf("malformed query string")
	}
	for key, vs := range vals {
		if len(vs) != 1 {
			return q, invalidf("query parameter %q given more than once", key)
		}
		v := vs[0]
		switch key {
		case "limit":
			n, ok := parseBoundedInt(v, 1, maxListLimit)
			if !ok {
				return q, invalidf("limit must be an integer from 1 to %d", maxListLimit)
			}
			q.limit = n
		case "offset":
			n, ok := parseBoundedInt(v, 0, 1<<31-1)
			if !ok {
				return q, invalidf("offset must be a non-negative integer")
			}
			q.offset = n
		case "status":
			st, ok := parseFileStatus(v)
			if !ok {
				return q, invalidf("status must be one of active, expired, deleted")
			}
			q.filter = statusFilter(st)
		default:
			return q, invalidf("unknown query parameter %q", truncateForMessage(key))
		}
	}
	return q, nil
}

// parseBoundedInt accepts plain decimal digits only (no sign, no spaces).
func parseBoundedInt(s string, lo, hi int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= lo && n <= hi
}

func truncateForMessage(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "?")
}

func (s *server) handleGetMetadata(w http.ResponseWriter, r *http.Request) {
	id, err := pathFileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rec, err := s.store.lookup(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec.meta)
}

func (s *server) handlePatch(w http.ResponseWriter, r *http.Request) {
	if !s.requireMode(w, opUpdate) {
		return
	}
	id, err := pathFileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	patch, err := decodePatch(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rec, err := s.store.updateMetadata(id, patch)
	s.metrics.operation("update", err)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec.meta)
}

// decodePatch parses FileMetadataUpdate: description (string, or null to clear) and
// tags (array of strings, or null to clear); other fields are ignored; at least one of
// the two must be present.
func decodePatch(body io.Reader) (metadataPatch, error) {
	var p metadataPatch
	var raw map[string]json.RawMessage
	if err := decodeJSONBody(body, &raw); err != nil {
		return p, err
	}
	d, hasDesc := raw["description"]
	t, hasTags := raw["tags"]
	if !hasDesc && !hasTags {
		return p, invalidf("body must contain description or tags")
	}
	if hasDesc {
		var desc *string
		if err := json.Unmarshal(d, &desc); err != nil {
			return p, invalidf("description must be a string or null")
		}
		if err := validateDescription(desc); err != nil {
			return p, invalidf("%v", err)
		}
		p.SetDescription, p.Description = true, desc
	}
	if hasTags {
		tags, err := parseTags(t)
		if err != nil {
			return p, err
		}
		p.SetTags, p.Tags = true, tags
	}
	return p, nil
}

// decodeJSONBody decodes exactly one JSON object from a bounded body.
func decodeJSONBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return invalidf("request body too large")
		}
		return invalidf("body must be a JSON object")
	}
	if dec.More() {
		return invalidf("body must be a single JSON object")
	}
	return nil
}

// parseTags accepts a JSON array of strings (or null) within the tag bounds.
func parseTags(data []byte) ([]string, error) {
	var tags []string
	trimmed := strings.TrimSpace(string(data))
	if trimmed == "null" {
		return nil, nil
	}
	if !strings.HasPrefix(trimmed, "[") || json.Unmarshal(data, &tags) != nil {
		return nil, invalidf("tags must be a JSON array of strings")
	}
	if err := validateTags(tags); err != nil {
		return nil, invalidf("%v", err)
	}
	if tags == nil {
		tags = []string{}
	}
	return tags, nil
}

func (s *server) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !s.requireMode(w, opDelete) {
		return
	}
	id, err := pathFileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.store.softDelete(id)
	s.metrics.operation("delete", err)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- mode and maintenance ----

func (s *server) handleModeTransition(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TargetMode *string `json:"target_mode"`
		Confirm    *bool   `json:"confirm"`
	}
	if err := decodeJSONBody(http.MaxBytesReader(w, r.Body, maxJSONBody), &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.TargetMode == nil {
		s.fail(w, r, invalidf("target_mode is required"))
		return
	}
	target, ok := parseMode(*body.TargetMode)
	if !ok {
		s.fail(w, r, invalidf("target_mode must be one of rw, ro, ar"))
		return
	}
	sub := claimsFrom(r.Context()).Subject
	from, at, err := s.store.transitionMode(target, body.Confirm != nil && *body.Confirm, sub)
	switch {
	case errors.Is(err, errInvalidTransition):
		writeError(w, http.StatusConflict, "INVALID_TRANSITION", fmt.Sprintf("transition %s -> %s is not allowed", from, target))
		return
	case errors.Is(err, errConfirmationRequired):
		writeError(w, http.StatusConflict, "CONFIRMATION_REQUIRED", "ro -> rw requires \"confirm\": true")
		return
	case errors.Is(err, errInvalidTargetMode):
		s.fail(w, r, invalidf("target_mode must be one of rw, ro, ar"))
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.log.Warn("mode transition", "from", from, "to", target, "sub", sub, "at", at.Format(time.RFC3339Nano),
		"request_id", requestID(r.Context()))
	writeJSON(w, http.StatusOK, map[string]any{
		"previous_mode": from, "current_mode": target, "transitioned_at": at.Format(time.RFC3339Nano),
	})
}

func (s *server) handleReconcile(w http.ResponseWriter, r *http.Request) {
	report, err := s.reconcile.run(r.Context(), "api")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}

// ---- helpers ----

// mediaTypeIs reports whether a Content-Type header names the given media type.
func mediaTypeIs(header, want string) (map[string]string, bool) {
	mt, params, err := mime.ParseMediaType(header)
	if err != nil || !strings.EqualFold(mt, want) {
		return nil, false
	}
	return params, true
}

// safeHeaderValue bounds and cleans a client-supplied header-ish value we record.
func safeHeaderValue(s string, maxLen int) (string, bool) {
	if len(s) > maxLen || !utf8.ValidString(s) {
		return "", false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return s, true
}

// ---- upload ----

// handleUpload streams a multipart upload into the store. Mode and size are checked
// before the body is read; the file part goes straight to disk (never through
// ParseMultipartForm, which would buffer it).
func (s *server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if !s.requireMode(w, opUpload) {
		return
	}
	if _, ok := mediaTypeIs(r.Header.Get("Content-Type"), "multipart/form-data"); !ok {
		s.fail(w, r, invalidf("body must be multipart/form-data"))
		return
	}
	limit := s.store.maxFileSize + uploadOverhead
	if r.ContentLength > limit {
		s.fail(w, r, errFileTooLarge)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		s.fail(w, r, invalidf("malformed multipart body"))
		return
	}
	up, err := s.store.beginUpload(max(r.ContentLength-uploadOverhead, -1))
	if err != nil {
		s.metrics.operation("upload", err)
		s.fail(w, r, err)
		return
	}
	defer up.abort()
	info, err := readUploadParts(mr, up)
	if err == nil {
		info.UploadedBy = claimsFrom(r.Context()).Subject
		var rec *fileRecord
		rec, err = up.commit(info)
		if err == nil {
			s.metrics.operation("upload", nil)
			w.Header().Set("Location", "/api/v1/files/"+rec.meta.FileID)
			writeJSON(w, http.StatusCreated, rec.meta)
			return
		}
	}
	s.metrics.operation("upload", err)
	s.fail(w, r, uploadError(err))
}

// uploadError turns a body read failure (malformed multipart, client gone) into a 400;
// limits and disk errors keep their meaning.
func uploadError(err error) error {
	var mbe *http.MaxBytesError
	var ve *validationError
	switch {
	case errors.As(err, &mbe), errors.Is(err, errFileTooLarge), errors.Is(err, errStorageFull),
		errors.Is(err, errModeNotAllowed), errors.As(err, &ve):
		return err
	case errors.Is(err, errBodyRead):
		return invalidf("upload body could not be read completely")
	}
	return err
}

var errBodyRead = errors.New("read request body")

// readUploadParts walks the parts in any order: the file part is streamed into up,
// description and tags are read with small bounds, unknown parts are skipped (bounded).
func readUploadParts(mr *multipart.Reader, up *upload) (uploadInfo, error) {
	var info uploadInfo
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, wrapBodyErr(err)
		}
		name := part.FormName()
		if seen[name] && (name == "file" || name == "description" || name == "tags") {
			return info, invalidf("part %q given more than once", name)
		}
		seen[name] = true
		switch name {
		case "file":
			err = readFilePart(part, up, &info)
		case "description":
			err = readDescriptionPart(part, &info)
		case "tags":
			err = readTagsPart(part, &info)
		default:
			err = discardPart(part)
		}
		part.Close()
		if err != nil {
			return info, err
		}
	}
	if !seen["file"] {
		return info, invalidf("multipart body has no file part")
	}
	return info, nil
}

func wrapBodyErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return fmt.Errorf("%w: %w", errBodyRead, err)
}

func readFilePart(part *multipart.Part, up *upload, info *uploadInfo) error {
	name, ok := safeHeaderValue(part.FileName(), maxFilenameBytes)
	if !ok {
		return invalidf("file name must be valid UTF-8 of at most %d bytes", maxFilenameBytes)
	}
	if name == "" {
		name = "file"
	}
	ct := part.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil || len(ct) > maxContentTypeBytes {
		return invalidf("file part has an invalid Content-Type")
	}
	info.Filename, info.ContentType = name, ct
	if err := up.writeContent(part); err != nil {
		if errors.Is(err, errFileTooLarge) || errors.Is(err, errStorageFull) {
			return err
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return wrapBodyErr(err)
	}
	return nil
}

func readDescriptionPart(part *multipart.Part, info *uploadInfo) error {
	data, err := readBoundedPart(part, 4*maxDescriptionChars)
	if err != nil {
		return err
	}
	d := string(data)
	if err := validateDescription(&d); err != nil {
		return invalidf("%v", err)
	}
	info.Description = &d
	return nil
}

func readTagsPart(part *multipart.Part, info *uploadInfo) error {
	data, err := readBoundedPart(part, maxTagsPartBytes)
	if err != nil {
		return err
	}
	tags, err := parseTags(data)
	if err != nil {
		return err
	}
	info.Tags = tags
	return nil
}

func discardPart(part *multipart.Part) error {
	_, err := readBoundedPart(part, maxOtherPart)
	return err
}

// readBoundedPart reads a small part whole; more than limit bytes is a 400.
func readBoundedPart(part *multipart.Part, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(part, limit+1))
	if err != nil {
		return nil, wrapBodyErr(err)
	}
	if int64(len(data)) > limit {
		return nil, invalidf("part %q is larger than %d bytes", truncateForMessage(part.FormName()), limit)
	}
	return data, nil
}

// ---- download ----

func (s *server) handleDownload(w http.ResponseWriter, r *http.Request) {
	if !s.requireMode(w, opDownload) {
		return
	}
	id, err := pathFileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rec, f, err := s.store.openBlob(id)
	s.metrics.operation("download", err)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer f.Close()
	if hasZeroSuffixRange(r.Header.Get("Range")) {
		// "bytes=-0" asks for nothing; RFC 9110 §14.1.2 makes it unsatisfiable, which
		// http.ServeContent does not implement.
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", rec.size()))
		writeError(w, http.StatusRequestedRangeNotSatisfiable, "INVALID_RANGE", "requested range not satisfiable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", rec.meta.ContentType)
	h.Set("Content-Disposition", contentDisposition(rec.meta.OriginalFilename))
	h.Set("ETag", `"`+rec.meta.Checksum+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Content-Type-Options", "nosniff")
	body := newVerifyingReader(f, rec.size(), rec.meta.Checksum, func() {
		s.log.Error("blob bytes do not match their checksum; transfer aborted", "file_id", rec.meta.FileID,
			"request_id", requestID(r.Context()))
		s.metrics.corruptReads.Inc()
	})
	defer body.close()
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w}, r, "", rec.uploadedAt(), body)
}

// hasZeroSuffixRange reports whether a Range header holds only "-0" suffix ranges.
func hasZeroSuffixRange(h string) bool {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return false
	}
	for _, r := range strings.Split(spec, ",") {
		if strings.TrimSpace(r) != "-0" {
			return false
		}
	}
	return true
}

// contentDisposition renders an attachment header with an ASCII fallback and the
// RFC 5987 filename* form for anything else (RFC 6266).
func contentDisposition(name string) string {
	ascii := make([]byte, 0, len(name))
	plain := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 0x80 || c < 0x20 || c == 0x7f:
			plain = false
			if c < 0x80 || utf8.RuneStart(c) {
				ascii = append(ascii, '_')
			}
		case c == '"' || c == '\\':
			plain = false
			ascii = append(ascii, '_')
		default:
			ascii = append(ascii, c)
		}
	}
	v := `attachment; filename="` + string(ascii) + `"`
	if !plain {
		v += "; filename*=UTF-8''" + rfc5987Encode(name)
	}
	return v
}

// rfc5987Encode percent-encodes every byte that is not an RFC 5987 attr-char.
func rfc5987Encode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isAttrChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// rangeErrorWriter turns the plain-text 416 of http.ServeContent into the JSON
// INVALID_RANGE error. Other statuses pass through untouched.
type rangeErrorWriter struct {
	http.ResponseWriter
	swallow bool
}

func (w *rangeErrorWriter) WriteHeader(code int) {
	if code == http.StatusRequestedRangeNotSatisfiable {
		// Keep Content-Range ("bytes */size", RFC 9110 §15.5.17); drop what
		// described the file, since the body is now a JSON error.
		w.swallow = true
		w.Header().Del("Content-Disposition")
		writeError(w.ResponseWriter, code, "INVALID_RANGE", "requested range not satisfiable")
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rangeErrorWriter) Write(p []byte) (int, error) {
	if w.swallow {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *rangeErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
