package main

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestMissingKeys(t *testing.T) {
	defaults := map[string]any{
		"a":    map[string]any{"b": 1, "c": map[string]any{"d": 2}},
		"free": map[string]any{},
		"list": []any{},
	}
	override := map[string]any{
		"a":    map[string]any{"b": 3, "x": 1, "c": map[string]any{"d": 4, "y": 5}},
		"free": map[string]any{"anything": 1},
		"list": []any{1},
		"new":  true,
	}
	got := missingKeys(defaults, override, "")
	if want := []string{"a.c.y", "a.x", "new"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCheckEnvNames(t *testing.T) {
	vars := []string{"SE_PORT", "SE_MODE"}
	r := &report{}
	checkEnvNames([]string{"SE_PORT", "POD_NAME", "HTTPS_PROXY", "SE_NOPE", "OTHER"}, vars, []string{"HTTPS_PROXY"}, r)
	if len(r.problems) != 2 || !strings.Contains(r.problems[0], "SE_NOPE") || !strings.Contains(r.problems[1], "OTHER") {
		t.Fatalf("problems %q", r.problems)
	}
}

func TestEnvFormats(t *testing.T) {
	cases := []struct {
		name, value string
		ok          bool
	}{
		{"SE_JWKS_URL", "https://admin/.well-known/jwks.json", true},
		{"SE_JWKS_URL", "http://127.0.0.1:9000/jwks.json", true},
		{"SE_JWKS_URL", "http://[::1]/jwks.json", true},
		{"SE_JWKS_URL", "http://admin/jwks.json", false},
		{"SE_JWKS_URL", "ftp://admin/jwks.json", false},
		{"SE_MAX_FILE_SIZE", "2147483648", true},
		{"SE_MAX_FILE_SIZE", "2.147483648e+09", false},
		{"SE_MAX_FILE_SIZE", "01", false},
		{"SE_PORT", "8010", true},
		{"SE_PORT", "70000", false},
		{"SE_GC_INTERVAL", "30m", true},
		{"SE_GC_INTERVAL", "hourly", false},
		{"SE_ADVERTISE_ADDR", "$(POD_NAME).se-headless.artstore.svc.cluster.local:8010", true},
		{"SE_ADVERTISE_ADDR", "se-0", false},
		{"SE_PEER_TLS_INSECURE_SKIP_VERIFY", "1", false},
		{"SE_STORAGE_ID", "se-moscow-01", true},
		{"SE_STORAGE_ID", "-bad", false},
		{"SE_DEPHEALTH_NAME", "Storage", false},
	}
	for _, c := range cases {
		r := &report{}
		checkEnvValues([]corev1.EnvVar{{Name: c.name, Value: c.value}}, r)
		if ok := len(r.problems) == 0; ok != c.ok {
			t.Errorf("%s=%q: ok=%v, want %v (%v)", c.name, c.value, ok, c.ok, r.problems)
		}
	}
}

func TestDecodeStrictRefusesUnknownAndDuplicateFields(t *testing.T) {
	base := "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: se\n  namespace: artstore\n"
	if _, err := decodeStrict(base); err != nil {
		t.Fatalf("valid object refused: %v", err)
	}
	bad := map[string]string{
		"unknown field":   base + "automountServiceAccountTokens: false\n",
		"duplicate field": base + "automountServiceAccountToken: false\nautomountServiceAccountToken: true\n",
		"wrong case":      base + "AutomountServiceAccountToken: false\n",
		"unknown kind":    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: se\n  namespace: artstore\n",
		"other namespace": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: se\n  namespace: default\n",
		"bad name":        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: Se_1\n  namespace: artstore\n",
	}
	for name, doc := range bad {
		if _, err := decodeStrict(doc); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
