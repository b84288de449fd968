// Command helmcheck is the CI check of the storage-element Helm chart. It lives in its own
// module (tools/helmcheck); the product never imports it.
//
//	helmcheck -chart helm/storage-element -config config.go
//
// For each scenario (default values, values-replicated.yaml, every optional feature on in
// both modes) it runs `helm lint --strict` and `helm template` through the Helm Go SDK,
// decodes every rendered object strictly into its Go API type (decode.go) and asserts the
// deployment rules of the Storage Element (assert.go). Across scenarios it checks that the
// env names the chart sets are exactly the variables config.go reads (configvars.go), and it
// renders bad values that must be refused. Exit status 0 when everything passes, 1 otherwise.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"sigs.k8s.io/yaml"
)

// requiredSet is the one value without a default (jwks.url); every scenario supplies it.
const requiredSet = "jwks.url=https://admin.artstore.svc:8443/.well-known/jwks.json"

// aliases are variables the binary accepts under a second name; the chart sets the
// canonical one, so the alias need not be reachable.
var aliases = map[string]string{"SE_CA_CERT_PATH": "SE_JWKS_CA_CERT"}

// dumpDir, when set, receives the rendered manifests of each scenario.
var dumpDir string

type scenario struct {
	name       string
	files      []string // value files, relative to the chart directory
	sets       []string
	replicated bool
	// optional kinds this scenario must render; the others must be absent.
	wantKinds []string
}

var optionalKinds = []string{"Certificate", "HTTPRoute", "BackendTLSPolicy", "Ingress", "ServiceMonitor", "PodDisruptionBudget"}

// badValues must each be refused at render time, with an error containing want.
var badValues = []struct {
	name, want string
	sets       []string
}{
	{"jwks.url missing", "jwks.url is required", nil},
	{"mode not a mode", "'/mode'", []string{requiredSet, "mode=bogus"}},
	{"replicaMode unknown", "'/replicaMode'", []string{requiredSet, "replicaMode=cluster"}},
	{"jwks.url plain http to a remote host", "'/jwks/url'", []string{"jwks.url=http://admin.example.com/jwks.json"}},
	{"SE_* through extraEnv", "'/extraEnv/0/name'", []string{requiredSet, "extraEnv[0].name=SE_PORT", "extraEnv[0].value=1"}},
	{"unknown top-level key", "additional properties 'replicas'", []string{requiredSet, "replicas=3"}},
	{"privileged port", "'/port'", []string{requiredSet, "port=443"}},
	{"duration not a Go duration", "'/config/gcInterval'", []string{requiredSet, "config.gcInterval=hourly"}},
	{"writable root filesystem", "'/securityContext/readOnlyRootFilesystem'", []string{requiredSet, "securityContext.readOnlyRootFilesystem=false"}},
	{"cert-manager without issuer", "issuerRef.name is required", []string{requiredSet, "tls.certManager.enabled=true"}},
}

func main() {
	chartDir := flag.String("chart", "helm/storage-element", "chart directory")
	configGo := flag.String("config", "config.go", "the SE's config.go holding var configVariables")
	testdata := flag.String("testdata", "tools/helmcheck/testdata", "directory with all-features.yaml")
	kubeVersion := flag.String("kube-version", "v1.31.0", "Kubernetes version to render for")
	flag.StringVar(&dumpDir, "dump", "", "write each scenario's rendered manifests to DIR/<scenario>.yaml")
	flag.Parse()

	start := time.Now()
	ok := run(*chartDir, *configGo, *testdata, *kubeVersion)
	status := "PASS"
	if !ok {
		status = "FAIL"
	}
	fmt.Printf("helmcheck: %s (%s)\n", status, time.Since(start).Round(time.Millisecond))
	if !ok {
		os.Exit(1)
	}
}

func run(chartDir, configGo, testdata, kubeVersion string) bool {
	vars, err := readConfigVariables(configGo)
	if err != nil {
		fmt.Println("FAIL:", err)
		return false
	}
	fmt.Printf("config.go: %d variables in %s\n", len(vars), configVarsName)

	rd, err := newRenderer(chartDir, kubeVersion)
	if err != nil {
		fmt.Println("FAIL:", err)
		return false
	}
	allFeatures, err := filepath.Abs(filepath.Join(testdata, "all-features.yaml"))
	if err != nil {
		fmt.Println("FAIL:", err)
		return false
	}
	replicatedFile := filepath.Join(chartDir, "values-replicated.yaml")
	scenarios := []scenario{
		{name: "default", sets: []string{requiredSet}},
		{name: "replicated", files: []string{replicatedFile}, sets: []string{requiredSet}, replicated: true,
			wantKinds: []string{"Certificate", "PodDisruptionBudget"}},
		{name: "all-features", files: []string{allFeatures}, wantKinds: optionalKinds},
		{name: "all-features-replicated", files: []string{replicatedFile, allFeatures}, replicated: true, wantKinds: optionalKinds},
	}

	pass := true
	envSeen := map[string]bool{}
	for _, sc := range scenarios {
		names, ok := runScenario(rd, sc, vars)
		pass = pass && ok
		for _, n := range names {
			envSeen[n] = true
		}
	}
	pass = checkEnvCoverage(vars, envSeen) && pass
	pass = checkValuesDocumented(chartDir, allFeatures) && pass
	pass = checkBadValues(rd) && pass
	return pass
}

func runScenario(rd *renderer, sc scenario, vars []string) ([]string, bool) {
	fmt.Printf("\n== scenario %s", sc.name)
	if len(sc.files) > 0 {
		fmt.Printf(" (values: %s)", strings.Join(baseNames(sc.files), ", "))
	}
	fmt.Println()
	vals, err := mergeValues(sc.files, sc.sets)
	if err != nil {
		fmt.Println("  FAIL:", err)
		return nil, false
	}
	r := &report{}

	findings, infos := rd.lint(vals)
	for _, f := range findings {
		r.fail("helm lint: %s", f)
	}
	fmt.Printf("  helm lint --strict: %d finding(s), %d info\n", len(findings), len(infos))
	for _, i := range infos {
		fmt.Println("    " + i)
	}

	out, err := rd.template(vals)
	if err != nil {
		fmt.Println("  FAIL: helm template:", err)
		return nil, false
	}
	if err := dump(sc.name, out.docs); err != nil {
		fmt.Println("  FAIL:", err)
		return nil, false
	}
	var objs objects
	for _, doc := range out.docs {
		d, err := decodeStrict(doc)
		if err != nil {
			r.fail("decode: %v", err)
			continue
		}
		objs = append(objs, d)
	}
	fmt.Printf("  helm template: %d object(s), all decoded strictly:\n", len(objs))
	for _, d := range objs {
		fmt.Println("    " + d.String())
	}
	if strings.TrimSpace(out.notes) == "" {
		r.fail("NOTES.txt rendered empty")
	}

	checkKinds(objs, sc.wantKinds, r)
	names := checkRender(objs, sc.replicated, r)
	checkEnvNames(names, vars, extraEnvNames(vals), r)

	for _, p := range r.problems {
		fmt.Println("  FAIL: " + p)
	}
	if len(r.problems) == 0 {
		fmt.Printf("  assertions: ok (%d env vars)\n", len(names))
	}
	return names, len(r.problems) == 0
}

func dump(name string, docs []string) error {
	if dumpDir == "" {
		return nil
	}
	if err := os.MkdirAll(dumpDir, 0o755); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	body := "---\n" + strings.Join(docs, "\n---\n") + "\n"
	if err := os.WriteFile(filepath.Join(dumpDir, name+".yaml"), []byte(body), 0o644); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func checkKinds(objs objects, want []string, r *report) {
	have := map[string]int{}
	for _, d := range objs {
		have[d.gvk[strings.LastIndex(d.gvk, "/")+1:]]++
	}
	for _, k := range optionalKinds {
		switch {
		case slices.Contains(want, k) && have[k] == 0:
			r.fail("expected a %s, none rendered", k)
		case !slices.Contains(want, k) && have[k] > 0:
			r.fail("%s rendered although its feature is off", k)
		}
	}
}

// checkEnvNames: every SE_* name the chart sets is a variable of config.go; other names are
// only the POD_NAME helper (for $(POD_NAME) expansion) or the scenario's own extraEnv.
func checkEnvNames(names, vars, extra []string, r *report) {
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "SE_"):
			if !slices.Contains(vars, n) {
				r.fail("env %s is not read by the SE (not in %s)", n, configVarsName)
			}
		case n == podNameHelper, slices.Contains(extra, n):
		default:
			r.fail("env %s is neither an SE variable nor a declared helper", n)
		}
	}
}

func extraEnvNames(vals map[string]any) []string {
	list, _ := vals["extraEnv"].([]any)
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// checkEnvCoverage: across the scenarios, every variable of config.go is set by the chart
// (aliases excepted), so values.yaml can reach each of them.
func checkEnvCoverage(vars []string, seen map[string]bool) bool {
	fmt.Println("\n== env coverage")
	var missing []string
	for _, v := range vars {
		if seen[v] {
			continue
		}
		if canon, ok := aliases[v]; ok && seen[canon] {
			continue
		}
		missing = append(missing, v)
	}
	if len(missing) > 0 {
		fmt.Printf("  FAIL: no values reach %v\n", missing)
		return false
	}
	fmt.Printf("  ok: all %d variables of %s are reachable from values (aliases via their canonical name: %v)\n", len(vars), configVarsName, aliases)
	return true
}

// checkValuesDocumented: every key path set by all-features.yaml exists in values.yaml, so the
// default values file documents everything a user can set.
func checkValuesDocumented(chartDir, allFeatures string) bool {
	fmt.Println("\n== values.yaml documents every key of all-features.yaml")
	chrt, err := loader.Load(chartDir)
	if err != nil {
		fmt.Println("  FAIL: load chart:", err)
		return false
	}
	raw, err := os.ReadFile(allFeatures)
	if err != nil {
		fmt.Println("  FAIL:", err)
		return false
	}
	var overrides map[string]any
	if err := yaml.Unmarshal(raw, &overrides); err != nil {
		fmt.Println("  FAIL: parse all-features.yaml:", err)
		return false
	}
	missing := missingKeys(chrt.Values, overrides, "")
	for _, m := range missing {
		fmt.Println("  FAIL: not in values.yaml: " + m)
	}
	if len(missing) == 0 {
		fmt.Println("  ok")
	}
	return len(missing) == 0
}

// missingKeys lists key paths of override that defaults lacks; free-form maps (empty in
// defaults, such as annotations) and lists are leaves.
func missingKeys(defaults, override map[string]any, prefix string) []string {
	var out []string
	for k, v := range override {
		path := prefix + k
		d, ok := defaults[k]
		if !ok {
			out = append(out, path)
			continue
		}
		dm, dIsMap := d.(map[string]any)
		vm, vIsMap := v.(map[string]any)
		if dIsMap && vIsMap && len(dm) > 0 {
			out = append(out, missingKeys(dm, vm, path+".")...)
		}
	}
	slices.Sort(out)
	return out
}

// firstLine shortens an error for the log: its last line (the schema error or the
// template's message), trimmed.
func firstLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if len(last) > 160 {
		last = last[:160] + "..."
	}
	return last
}

func checkBadValues(rd *renderer) bool {
	fmt.Println("\n== bad values are refused")
	pass := true
	for _, bv := range badValues {
		vals, err := mergeValues(nil, bv.sets)
		if err != nil {
			fmt.Printf("  FAIL: %s: %v\n", bv.name, err)
			pass = false
			continue
		}
		_, err = rd.template(vals)
		switch {
		case err == nil:
			fmt.Printf("  FAIL: %s: rendered without error\n", bv.name)
			pass = false
		case !strings.Contains(err.Error(), bv.want):
			fmt.Printf("  FAIL: %s: error does not mention %q: %v\n", bv.name, bv.want, err)
			pass = false
		default:
			fmt.Printf("  ok: %s: %s\n", bv.name, firstLine(err.Error()))
		}
	}
	return pass
}
