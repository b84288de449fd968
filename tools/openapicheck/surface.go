// surface.go proves the served route set equals the documented one, from the
// outside (probing the running SE) and from the inside (routes() in source).
//
// Rules:
//   - Documented but not served: every documented method+path must get an
//     answer that is neither 405 nor the generic unknown-path 404 (same body
//     as a request to a random unknown path).
//   - Served but not documented: every other method on a documented path
//     must get 405 METHOD_NOT_ALLOWED whose Allow header lists exactly the
//     documented methods (plus HEAD where GET is documented: HTTP serves HEAD
//     for every GET, RFC 9110 §9.3.2). Near-miss paths must get the generic
//     404 (see scenario.unknownPaths).
package main

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// probeMethods are the methods tried on every documented path.
var probeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// documentedMethods groups the documented operations by path template.
func documentedMethods(ops []operation) map[string][]string {
	byPath := map[string][]string{}
	for _, o := range ops {
		byPath[o.Path] = append(byPath[o.Path], o.Method)
	}
	return byPath
}

// methodsAt lists the documented methods of every template that matches the
// concrete path. Templates overlap: /api/v1/files/upload is also
// /api/v1/files/{file_id} with file_id "upload", so GET on it is the
// documented metadata operation (answered 400, not a UUID), not a 405.
func methodsAt(ops []operation, concretePath string) []string {
	var methods []string
	for _, o := range ops {
		if templateMatches(o.Path, concretePath) && !slices.Contains(methods, o.Method) {
			methods = append(methods, o.Method)
		}
	}
	return methods
}

// templateMatches reports whether path fits the template segment by segment,
// a {wildcard} taking any one non-empty segment.
func templateMatches(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		wild := strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}")
		if (wild && ps[i] == "") || (!wild && ts[i] != ps[i]) {
			return false
		}
	}
	return true
}

// surface runs both probes against the running SE.
func (s *scenario) surface(ctx context.Context) {
	for _, o := range s.c.spec.Operations {
		s.probeServed(ctx, o)
	}
	byPath := documentedMethods(s.c.spec.Operations)
	for _, path := range slices.Sorted(maps.Keys(byPath)) {
		s.probeUnserved(ctx, path)
	}
}

// probeServed sends the documented operation with a full token and a path
// that hits the handler (an invalid file_id where there is one, so nothing
// changes) and rejects the router's own answers.
func (s *scenario) probeServed(ctx context.Context, o operation) {
	k := concrete(o, badID)
	k.Name, k.Token = "served: "+o.ID, s.tok.Full
	switch o.ID {
	case "transitionMode":
		k.Body = []byte(`{}`) // 400: no transition happens
	case "uploadFile":
		k.Body = nil // 400: nothing is stored
	}
	res := s.c.do(ctx, k)
	if res == nil {
		return
	}
	generic404 := res.Status == http.StatusNotFound && bytes.Equal(res.Body, s.unknown)
	if res.Status == http.StatusMethodNotAllowed || generic404 {
		s.c.fail("documented but not served: %s %s answers %d %s", o.Method, o.Path, res.Status, snippet(res.Body))
	}
}

// probeUnserved sends every undocumented method to a documented path and
// requires 405 with an exact Allow header.
func (s *scenario) probeUnserved(ctx context.Context, path string) {
	concretePath := strings.ReplaceAll(path, "{file_id}", randomID)
	allowed := methodsAt(s.c.spec.Operations, concretePath)
	if slices.Contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	for _, method := range probeMethods {
		if slices.Contains(allowed, method) {
			continue
		}
		res := s.c.do(ctx, call{
			Name: "not served: " + method + " " + path, Method: method, Path: concretePath, Token: s.tok.Full,
			Want: http.StatusMethodNotAllowed, WantCode: "METHOD_NOT_ALLOWED", Component: "MethodNotAllowed",
		})
		if res == nil || res.Status != http.StatusMethodNotAllowed {
			if res != nil && res.Status < 400 {
				s.c.fail("served but not documented: %s %s answers %d", method, path, res.Status)
			}
			continue
		}
		if got := parseAllow(res.Header.Get("Allow")); !sameSet(got, allowed) {
			s.c.fail("%s %s: Allow %q, want exactly %v", method, path, res.Header.Get("Allow"), sortedCopy(allowed))
		}
	}
}

// parseAllow splits an Allow header into upper-case methods.
func parseAllow(h string) []string {
	var out []string
	for _, m := range strings.Split(h, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, strings.ToUpper(m))
		}
	}
	return out
}

// sameSet reports whether a lists exactly the methods of b, each once.
func sameSet(a, b []string) bool {
	sa := sortedCopy(a)
	if len(slices.Compact(slices.Clone(sa))) != len(sa) {
		return false
	}
	return slices.Equal(sa, sortedCopy(b))
}

func sortedCopy(a []string) []string {
	c := slices.Clone(a)
	slices.Sort(c)
	return c
}
