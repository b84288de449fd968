// Reading the SE's configuration variable names straight from its source.
//
// config.go of the Storage Element declares the package-level variable configVariables,
// listing every environment variable the binary reads. Reading it from the source (instead
// of keeping a copy here) means a variable added to or removed from the binary fails this
// check until the chart follows. Two shapes are understood, with elements that are string
// literals or package-level string constants of the same file:
//
//	var configVariables = []string{"SE_PORT", envBindAddr, ...}
//
//	var configVariables = deriveNames(configSteps)   // any function of one table, where
//	var configSteps = []configStep{                  // each entry of the table literal holds
//		{[]string{envPort}, loadPort},               // one []string{...} literal of names
//		{names: []string{envJWKSCACert, envCACertPath}, load: ...},
//	}
//
// Anything else is an error naming configVariables, so a refactor of config.go that this
// reader cannot follow fails loudly instead of passing with a wrong list.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
)

const configVarsName = "configVariables"

// readConfigVariables parses the Go file at path and returns the names configVariables
// lists, in source order.
func readConfigVariables(path string) ([]string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config source: %w", err)
	}
	return parseConfigVariables(path, src)
}

// parseConfigVariables is readConfigVariables on source text; path only names it in errors.
func parseConfigVariables(path string, srcText []byte) ([]string, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, srcText, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	src := &goSource{fset: fset, consts: map[string]string{}, vars: map[string]ast.Expr{}}
	src.index(file)
	init, ok := src.vars[configVarsName]
	if !ok {
		return nil, fmt.Errorf("%s: no package-level var %s with an initializer", path, configVarsName)
	}
	names, err := src.names(init)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, configVarsName, err)
	}
	return checkUnique(names)
}

// goSource indexes one file's package-level string constants and variable initializers.
type goSource struct {
	fset   *token.FileSet
	consts map[string]string
	vars   map[string]ast.Expr
}

func (g *goSource) index(file *ast.File) {
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || (gen.Tok != token.CONST && gen.Tok != token.VAR) {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if gen.Tok == token.VAR {
					g.vars[name.Name] = vs.Values[i]
					continue
				}
				if bl, ok := vs.Values[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
					if v, err := strconv.Unquote(bl.Value); err == nil {
						g.consts[name.Name] = v
					}
				}
			}
		}
	}
}

// names evaluates the initializer of configVariables (see the file comment for the shapes).
func (g *goSource) names(init ast.Expr) ([]string, error) {
	switch e := init.(type) {
	case *ast.CompositeLit:
		if !isStringSlice(e.Type) {
			return nil, fmt.Errorf("%s: literal is not a []string", g.fset.Position(e.Pos()))
		}
		return g.stringElements(e)
	case *ast.CallExpr:
		if len(e.Args) != 1 {
			return nil, fmt.Errorf("%s: derived from a call with %d arguments, want one table", g.fset.Position(e.Pos()), len(e.Args))
		}
		ident, ok := e.Args[0].(*ast.Ident)
		if !ok {
			return nil, fmt.Errorf("%s: derived from something other than a package-level table", g.fset.Position(e.Pos()))
		}
		table, ok := g.vars[ident.Name].(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("table %s is not a package-level composite literal", ident.Name)
		}
		return g.tableNames(table)
	}
	return nil, fmt.Errorf("%s: unsupported initializer; use a []string literal", g.fset.Position(init.Pos()))
}

// tableNames collects, entry by entry, the one []string literal each table entry holds.
func (g *goSource) tableNames(table *ast.CompositeLit) ([]string, error) {
	var out []string
	for _, elt := range table.Elts {
		entry, ok := elt.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("%s: table entry is not a literal", g.fset.Position(elt.Pos()))
		}
		var lists []*ast.CompositeLit
		for _, field := range entry.Elts {
			if kv, ok := field.(*ast.KeyValueExpr); ok {
				field = kv.Value
			}
			if lit, ok := field.(*ast.CompositeLit); ok && isStringSlice(lit.Type) {
				lists = append(lists, lit)
			}
		}
		if len(lists) != 1 {
			return nil, fmt.Errorf("%s: table entry holds %d []string literals, want exactly one", g.fset.Position(entry.Pos()), len(lists))
		}
		names, err := g.stringElements(lists[0])
		if err != nil {
			return nil, err
		}
		out = append(out, names...)
	}
	return out, nil
}

func isStringSlice(expr ast.Expr) bool {
	arr, ok := expr.(*ast.ArrayType)
	if !ok || arr.Len != nil {
		return false
	}
	ident, ok := arr.Elt.(*ast.Ident)
	return ok && ident.Name == "string"
}

// stringElements resolves each element: a string literal or a string constant of the file.
func (g *goSource) stringElements(lit *ast.CompositeLit) ([]string, error) {
	names := make([]string, 0, len(lit.Elts))
	for _, elt := range lit.Elts {
		switch e := elt.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return nil, fmt.Errorf("%s: element is not a string", g.fset.Position(e.Pos()))
			}
			name, err := strconv.Unquote(e.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", g.fset.Position(e.Pos()), err)
			}
			names = append(names, name)
		case *ast.Ident:
			name, ok := g.consts[e.Name]
			if !ok {
				return nil, fmt.Errorf("%s: %s is not a string constant of this file", g.fset.Position(e.Pos()), e.Name)
			}
			names = append(names, name)
		default:
			return nil, fmt.Errorf("%s: element is neither a string literal nor a constant", g.fset.Position(elt.Pos()))
		}
	}
	return names, nil
}

// checkUnique refuses an empty list and duplicates, so the list can be used as a set.
func checkUnique(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%s is empty", configVarsName)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("%s lists %s twice", configVarsName, n)
		}
		seen[n] = true
	}
	return names, nil
}
