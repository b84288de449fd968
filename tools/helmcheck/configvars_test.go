package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseConfigVariablesLiteral(t *testing.T) {
	src := `package main
const envBind = "SE_BIND_ADDR"
var configVariables = []string{"SE_PORT", envBind}
`
	got, err := parseConfigVariables("config.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SE_PORT", "SE_BIND_ADDR"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// The shape config.go has: names derived from a table of steps, positional or keyed.
func TestParseConfigVariablesStepTable(t *testing.T) {
	src := `package main
const (
	envPort = "SE_PORT"
	envCA   = "SE_JWKS_CA_CERT"
	envCA2  = "SE_CA_CERT_PATH"
)
type step struct { names []string; load func() error }
var steps = []step{
	{[]string{envPort}, loadPort},
	{names: []string{envCA, envCA2}, load: func() error { return nil }},
}
var configVariables = namesOf(steps)
`
	got, err := parseConfigVariables("config.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SE_PORT", "SE_JWKS_CA_CERT", "SE_CA_CERT_PATH"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestParseConfigVariablesRefusals(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"missing":       {`package main`, "no package-level var configVariables"},
		"duplicate":     {`package main; var configVariables = []string{"SE_A", "SE_A"}`, "lists SE_A twice"},
		"empty":         {`package main; var configVariables = []string{}`, "is empty"},
		"unknown const": {`package main; var configVariables = []string{envNope}`, "envNope is not a string constant"},
		"not strings":   {`package main; var configVariables = []int{1}`, "not a []string"},
		"two lists":     {`package main; var t = []s{{[]string{"A"}, []string{"B"}}}; var configVariables = f(t)`, "want exactly one"},
		"computed":      {`package main; var configVariables = append(a, b...)`, "call with 2 arguments"},
		"syntax":        {`package main; var configVariables = `, "parse"},
	}
	for name, c := range cases {
		_, err := parseConfigVariables("config.go", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, c.want)
		}
	}
}

// FuzzParseConfigVariables: arbitrary source never panics, and an accepted list is a
// non-empty set.
func FuzzParseConfigVariables(f *testing.F) {
	f.Add([]byte(`package main; var configVariables = []string{"SE_PORT"}`))
	f.Add([]byte(`package main; const a = "SE_A"; var t = []s{{[]string{a}, nil}}; var configVariables = g(t)`))
	f.Add([]byte(`package main; var configVariables = g(t); var t = 3`))
	f.Fuzz(func(t *testing.T, src []byte) {
		names, err := parseConfigVariables("fuzz.go", src)
		if err != nil {
			return
		}
		if len(names) == 0 {
			t.Fatal("accepted an empty list")
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Fatalf("accepted duplicate %q", n)
			}
			seen[n] = true
		}
	})
}
