// spec.go loads openapi.yaml, validates it, lints it against the project's own
// conventions, and validates real HTTP responses against it.
//
// Invariants:
//   - A response is "validated" only when kin-openapi (or, for the statuses it
//     skips, this file's header check built on the same schemas) accepted its
//     status, its documented headers and its body.
//   - An undocumented status is a failure (IncludeResponseStatus), never a pass.
//   - The in-memory document has its servers removed after validation so the
//     router matches on path alone: the SE runs on a random loopback port.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// publicPaths are the paths CONTRACT §3 serves without a token. The document
// must mark exactly these operations "security: []".
var publicPaths = []string{"/health/live", "/health/ready", "/metrics", "/api/v1/info"}

// knownScopes are the scopes of CONTRACT §3 an operation may require.
var knownScopes = []string{"files:read", "files:write", "storage:read", "storage:write"}

// scopeExtension names the vendor extension that records the scope an
// operation needs; the check reads it to provoke 403 for every operation.
const scopeExtension = "x-required-scope"

// uuidRFC4122 is the format the document's "format: uuid" must satisfy.
// kin-openapi does not validate "uuid" unless told to.
func init() {
	openapi3.DefineStringFormatValidator("uuid",
		openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122))
}

// operation is one documented method+path.
type operation struct {
	Method string // upper case
	Path   string // template, e.g. /api/v1/files/{file_id}
	ID     string // operationId
	Scope  string // "" for public operations
	Op     *openapi3.Operation
}

// key is the normalised "METHOD /path/{}" form shared with route patterns.
func (o operation) key() string { return o.Method + " " + normalizePath(o.Path) }

// spec is a loaded, validated document plus a router over it.
type spec struct {
	Doc        *openapi3.T
	Version    string
	Operations []operation // sorted by path then method
	router     routers.Router
}

// loadSpec reads, validates and lints the document at path.
func loadSpec(ctx context.Context, path string) (*spec, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(ctx, openapi3.EnableSchemaFormatValidation()); err != nil {
		return nil, fmt.Errorf("validate %s: %w", path, err)
	}
	s := &spec{Doc: doc, Version: doc.OpenAPI}
	s.Operations = collectOperations(doc)
	if err := lintSpec(s); err != nil {
		return nil, fmt.Errorf("lint %s: %w", path, err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router over %s: %w", path, err)
	}
	s.router = router
	return s, nil
}

// collectOperations lists every documented operation in a stable order.
func collectOperations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			scope, _ := op.Extensions[scopeExtension].(string)
			ops = append(ops, operation{
				Method: strings.ToUpper(method), Path: path, ID: op.OperationID, Scope: scope, Op: op,
			})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return ops
}

// isPublic reports whether the operation overrides the global security with
// an empty requirement list.
func isPublic(op *openapi3.Operation) bool {
	return op.Security != nil && len(*op.Security) == 0
}

// lintSpec enforces the conventions that make the document checkable: ids,
// scopes, security on exactly the non-public paths, the error responses every
// secured operation can produce, and closed response schemas.
func lintSpec(s *spec) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(s.Doc.Security) != 1 || s.Doc.Security[0]["bearerAuth"] == nil {
		add("the global security must be exactly [bearerAuth]")
	}
	seenIDs := map[string]bool{}
	for _, o := range s.Operations {
		name := o.Method + " " + o.Path
		if o.ID == "" {
			add("%s: no operationId", name)
		} else if seenIDs[o.ID] {
			add("%s: duplicate operationId %q", name, o.ID)
		}
		seenIDs[o.ID] = true
		lintOperation(o, add)
	}
	for _, p := range publicPaths {
		if s.Doc.Paths.Value(p) == nil || s.Doc.Paths.Value(p).Get == nil {
			add("public path GET %s is not documented", p)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// lintOperation checks one operation; add records a problem.
func lintOperation(o operation, add func(string, ...any)) {
	name := o.Method + " " + o.Path
	public := slices.Contains(publicPaths, o.Path)
	switch {
	case public && !isPublic(o.Op):
		add("%s: a public path must have security: []", name)
	case !public && isPublic(o.Op):
		add("%s: only %v may be public", name, publicPaths)
	case !public && !slices.Contains(knownScopes, o.Scope):
		add("%s: %s must name one of %v", name, scopeExtension, knownScopes)
	case public && o.Scope != "":
		add("%s: a public operation has no %s", name, scopeExtension)
	}
	if !public {
		for _, status := range []int{401, 403} {
			if o.Op.Responses.Status(status) == nil {
				add("%s: no %d response", name, status)
			}
		}
	}
	if strings.Contains(o.Path, "{file_id}") {
		for _, status := range []int{400, 404} {
			if o.Op.Responses.Status(status) == nil {
				add("%s: no %d response for a bad or unknown file_id", name, status)
			}
		}
	}
	for code, ref := range o.Op.Responses.Map() {
		lintResponse(name+" "+code, code, ref.Value, strings.HasPrefix(o.Path, "/health/"), add)
	}
}

// lintResponse requires errors to use the JSON envelope and JSON object
// bodies to be closed (additionalProperties: false). A probe's 503 is its
// health body, not an error envelope (CONTRACT §4).
func lintResponse(name, code string, resp *openapi3.Response, probe bool, add func(string, ...any)) {
	status, _ := strconv.Atoi(code)
	media := resp.Content.Get("application/json")
	if status >= 400 && !probe {
		if media == nil || media.Schema == nil || media.Schema.Value.Properties["error"] == nil {
			add("%s: an error must be application/json with the error envelope", name)
		}
	}
	if media == nil || media.Schema == nil {
		return
	}
	schema := media.Schema.Value
	if schema.Type.Is(openapi3.TypeObject) && !closedObject(schema) {
		add("%s: a JSON object response must have additionalProperties: false", name)
	}
}

// closedObject reports whether the schema forbids undocumented properties.
func closedObject(s *openapi3.Schema) bool {
	has := s.AdditionalProperties.Has
	return has != nil && !*has && s.AdditionalProperties.Schema == nil
}

// operationByID returns the documented operation with this id.
func (s *spec) operationByID(id string) (operation, bool) {
	for _, o := range s.Operations {
		if o.ID == id {
			return o, true
		}
	}
	return operation{}, false
}

// validationOptions are strict: undocumented statuses fail, every schema
// error is reported at once.
func validationOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
}

// findRoute maps a request to its documented operation. It returns
// routers.ErrPathNotFound / routers.ErrMethodNotAllowed for undocumented ones.
func (s *spec) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	return s.router.FindRoute(req)
}

// validateRequest checks a request the tool sends against the document, so
// the request side (parameters, bodies) is proven usable too.
func (s *spec) validateRequest(ctx context.Context, req *http.Request, body []byte) error {
	route, params, err := s.findRoute(req)
	if err != nil {
		return fmt.Errorf("route %s %s: %w", req.Method, req.URL.Path, err)
	}
	clone := req.Clone(ctx)
	clone.Body = io.NopCloser(strings.NewReader(string(body)))
	input := &openapi3filter.RequestValidationInput{
		Request: clone, PathParams: params, Route: route, Options: validationOptions(),
	}
	if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
		return fmt.Errorf("request does not match the document: %w", err)
	}
	return nil
}

// validateResponse checks a real response against the documented operation
// the request maps to. HEAD and 304, which kin-openapi skips, get the header
// check of their documented response (HEAD: the GET's).
func (s *spec) validateResponse(ctx context.Context, req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := s.findRoute(routingRequest(req))
	if err != nil {
		return fmt.Errorf("route %s %s: %w", req.Method, req.URL.Path, err)
	}
	if req.Method == http.MethodHead || status == http.StatusNotModified {
		return validateWithoutBody(route.Operation, status, header, body)
	}
	return validateFull(ctx, req, route, params, status, header, body)
}

// routingRequest maps HEAD to GET: HEAD is answered by the GET operation.
func routingRequest(req *http.Request) *http.Request {
	if req.Method != http.MethodHead {
		return req
	}
	clone := req.Clone(req.Context())
	clone.Method = http.MethodGet
	return clone
}

// validateFull runs kin-openapi's response validator.
func validateFull(ctx context.Context, req *http.Request, route *routers.Route, params map[string]string,
	status int, header http.Header, body []byte) error {
	opts := validationOptions()
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route, Options: opts,
		},
		Status:  status,
		Header:  header,
		Options: opts,
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, input); err != nil {
		return fmt.Errorf("response does not match the document: %w", err)
	}
	return nil
}

// validateWithoutBody checks status and headers of a response that has no
// body to check (HEAD, 304): the status must be documented, the documented
// headers present when required and valid, and the body empty.
func validateWithoutBody(op *openapi3.Operation, status int, header http.Header, body []byte) error {
	ref := op.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("status %d is not documented", status)
	}
	if len(body) != 0 {
		return fmt.Errorf("status %d must have no body, got %d bytes", status, len(body))
	}
	return validateHeaders(ref.Value, header)
}

// validateComponent validates a response against a named entry of
// components.responses: the answers for undocumented routes (unknown path
// 404, wrong method 405) have no operation to hang on.
func (s *spec) validateComponent(ctx context.Context, name string, req *http.Request, status int,
	header http.Header, body []byte) error {
	ref := s.Doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("components.responses.%s is not documented", name)
	}
	if req.Method == http.MethodHead {
		return validateHeaders(ref.Value, header)
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, ref))}
	route := &routers.Route{Spec: s.Doc, Path: req.URL.Path, Method: req.Method, Operation: op}
	return validateFull(ctx, req, route, nil, status, header, body)
}

// validateHeaders checks the documented headers of resp against header:
// required ones present, every present one valid against its schema.
func validateHeaders(resp *openapi3.Response, header http.Header) error {
	var problems []string
	for name, ref := range resp.Headers {
		h := ref.Value
		raw := header.Get(name)
		if raw == "" {
			if h.Required {
				problems = append(problems, fmt.Sprintf("required header %s missing", name))
			}
			continue
		}
		if h.Schema == nil || h.Schema.Value == nil {
			continue
		}
		value, err := headerValue(h.Schema.Value, raw)
		if err == nil {
			err = h.Schema.Value.VisitJSON(value, openapi3.VisitAsResponse())
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("header %s %q: %v", name, raw, err))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// headerValue converts a header's text to the JSON value its schema types.
func headerValue(schema *openapi3.Schema, raw string) (any, error) {
	switch {
	case schema.Type.Is(openapi3.TypeInteger), schema.Type.Is(openapi3.TypeNumber):
		return strconv.ParseFloat(raw, 64)
	case schema.Type.Is(openapi3.TypeBoolean):
		return strconv.ParseBool(raw)
	default:
		return raw, nil
	}
}
