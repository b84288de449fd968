// routes.go reads the SE's route table from its Go source and compares it
// with the documented operations.
//
// Format: the SE registers its routes inside a function (or method) named
// `routes` with Go 1.22 ServeMux patterns written as string literals, e.g.
//
//	mux.HandleFunc("GET /api/v1/files/{file_id}", s.handleGetFile)
//
// Every string literal in that function's body matching
// `^(GET|POST|PATCH|DELETE|PUT|HEAD|OPTIONS) /\S*$` is a served operation.
// Wildcard names are irrelevant to the comparison: "{file_id}" and "{id}"
// both normalise to "{}". A literal "/" (the unknown-path fallback) is not an
// operation and is ignored. Reading the source, not the binary, is WHY this
// catches a route that is registered but never reached by the probes.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// routePattern matches a method-qualified ServeMux pattern.
var routePattern = regexp.MustCompile(`^(GET|POST|PATCH|DELETE|PUT|HEAD|OPTIONS) (/\S*)$`)

// wildcard matches one path wildcard of either syntax ({name}, {name...}).
var wildcard = regexp.MustCompile(`\{[^{}]*\}`)

// routeFuncName is the function the lead's handlers.go defines.
const routeFuncName = "routes"

// normalizePath replaces every wildcard by "{}" so route patterns and
// OpenAPI templates compare equal when only the names differ.
func normalizePath(p string) string { return wildcard.ReplaceAllString(p, "{}") }

// sourceRoute is one pattern found in the source, with its position.
type sourceRoute struct {
	Key string // "METHOD /normalised/{}"
	Raw string // the literal as written
	Pos string // file:line
}

// readRoutes parses every non-test .go file of dir and returns the patterns
// found in the body of the function named routes. It fails when there is no
// such function or it registers nothing, so a renamed table cannot pass.
func readRoutes(dir string) ([]sourceRoute, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	fset := token.NewFileSet()
	var found []sourceRoute
	funcs := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		routes, n, err := routesInSource(fset, name, src)
		if err != nil {
			return nil, err
		}
		funcs += n
		found = append(found, routes...)
	}
	if funcs == 0 {
		return nil, fmt.Errorf("no function %s() in %s", routeFuncName, dir)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%s() in %s registers no method-qualified pattern", routeFuncName, dir)
	}
	return found, nil
}

// routesInSource extracts the patterns of every routes() function in one
// file and says how many such functions it has.
func routesInSource(fset *token.FileSet, name string, src []byte) ([]sourceRoute, int, error) {
	file, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, 0, fmt.Errorf("parse %s: %w", name, err)
	}
	var found []sourceRoute
	funcs := 0
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != routeFuncName || fn.Body == nil {
			continue
		}
		funcs++
		found = append(found, literalRoutes(fset, fn.Body)...)
	}
	return found, funcs, nil
}

// literalRoutes collects the route patterns among the string literals of n.
func literalRoutes(fset *token.FileSet, n ast.Node) []sourceRoute {
	var found []sourceRoute
	ast.Inspect(n, func(node ast.Node) bool {
		lit, ok := node.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		value, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		m := routePattern.FindStringSubmatch(value)
		if m == nil || m[2] == "/" {
			return true
		}
		found = append(found, sourceRoute{
			Key: m[1] + " " + normalizePath(m[2]),
			Raw: value,
			Pos: fset.Position(lit.Pos()).String(),
		})
		return true
	})
	return found
}

// routeDiff compares served patterns with documented operation keys and
// returns one line per difference (empty when the sets are equal). A pattern
// registered twice is a difference too: ServeMux would panic on it.
func routeDiff(served []sourceRoute, documented []string) []string {
	var diffs []string
	seen := map[string]string{}
	for _, r := range served {
		if prev, dup := seen[r.Key]; dup {
			diffs = append(diffs, fmt.Sprintf("served twice: %q at %s and %s", r.Raw, prev, r.Pos))
			continue
		}
		seen[r.Key] = r.Pos
		if !slices.Contains(documented, r.Key) {
			diffs = append(diffs, fmt.Sprintf("served but not documented: %q at %s", r.Raw, r.Pos))
		}
	}
	for _, key := range documented {
		if _, ok := seen[key]; !ok {
			diffs = append(diffs, fmt.Sprintf("documented but not in %s(): %s", routeFuncName, key))
		}
	}
	slices.Sort(diffs)
	return diffs
}
