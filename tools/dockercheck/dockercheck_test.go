package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// The project's Dockerfile, two directories up, is what CI lints; it must stay clean.
func TestProjectDockerfileIsClean(t *testing.T) {
	src, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Skip("no project Dockerfile next to this module:", err)
	}
	warnings, err := buildkitLint(src, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("buildkit lint: %v", warnings)
	}
	df, err := parseDockerfile(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := checkPolicy(df); len(p) > 0 {
		t.Errorf("policy: %v", p)
	}
}

func TestBuildkitLintReportsRules(t *testing.T) {
	src := "from alpine as Build\nMAINTAINER me\nENV A $UNDEFINED\nCMD echo hi\n"
	warnings, err := buildkitLint([]byte(src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	for _, rule := range []string{"StageNameCasing", "MaintainerDeprecated", "UndefinedVar", "JSONArgsRecommended", "LegacyKeyValueFormat"} {
		if !strings.Contains(joined, rule) {
			t.Errorf("rule %s not reported in:\n%s", rule, joined)
		}
	}
}

const policyOK = `ARG OUT=/out
FROM golang:1.26 AS build
ARG OUT
ARG VERSION=dev
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-X main.version=${VERSION}" -o "${OUT}/se" .
FROM scratch
ARG OUT
COPY --from=build ${OUT}/ /
USER 10001:10001
ENV SE_DATA_DIR=/data SE_WAL_DIR=/wal
EXPOSE 8010
VOLUME ["/data", "/wal"]
HEALTHCHECK CMD ["/se", "healthcheck"]
ENTRYPOINT ["/se"]
`

func TestPolicy(t *testing.T) {
	cases := map[string]struct{ old, new, want string }{
		"ok":            {"", "", ""},
		"base image":    {"FROM scratch", "FROM debian", "FROM scratch"},
		"root user":     {"USER 10001:10001", "USER 0:0", "root"},
		"named user":    {"USER 10001:10001", "USER se", "numeric"},
		"no cgo flag":   {"CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		"no trimpath":   {"-trimpath ", "", "-trimpath"},
		"no version":    {"-X main.version=${VERSION}", "", "main.version"},
		"port":          {"EXPOSE 8010", "EXPOSE 8080", "EXPOSE 8010"},
		"volume":        {`VOLUME ["/data", "/wal"]`, `VOLUME ["/data"]`, "SE_WAL_DIR"},
		"shell health":  {`HEALTHCHECK CMD ["/se", "healthcheck"]`, "HEALTHCHECK CMD /se healthcheck", "HEALTHCHECK"},
		"shell entry":   {`ENTRYPOINT ["/se"]`, "ENTRYPOINT /se", "exec form"},
		"context files": {"COPY --from=build ${OUT}/ /", "COPY . /", "build context"},
	}
	for name, c := range cases {
		src := strings.Replace(policyOK, c.old, c.new, 1)
		df, err := parseDockerfile([]byte(src), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		problems := strings.Join(checkPolicy(df), "\n")
		switch {
		case c.want == "" && problems != "":
			t.Errorf("%s: unexpected problems: %s", name, problems)
		case c.want != "" && !strings.Contains(problems, c.want):
			t.Errorf("%s: want a problem mentioning %q, got %q", name, c.want, problems)
		}
	}
}

func TestArgResolution(t *testing.T) {
	src := `ARG G=global
ARG H=h
FROM scratch AS s
ARG G
ARG L=${G}-local
ARG H
ENV E=${L}
`
	df, err := parseDockerfile([]byte(src), map[string]string{"H": "override"})
	if err != nil {
		t.Fatal(err)
	}
	env := df.stages[0].env
	for k, want := range map[string]string{"G": "global", "L": "global-local", "H": "override", "E": "global-local"} {
		if got, _ := env.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := df.stages[0].envOnly.Pairs(); !slices.Equal(got, []string{"E=global-local"}) {
		t.Errorf("ENV only: %v", got)
	}
	// A RUN sees the values in force at that point, not later ones.
	df, err = parseDockerfile([]byte("FROM scratch\nARG A=1\nRUN true\nARG A=2\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range df.stages[0].commands {
		if _, ok := cmd.(*instructions.RunCommand); ok && !slices.Equal(df.stages[0].runEnv[i], []string{"A=1"}) {
			t.Errorf("RUN env %v, want [A=1]", df.stages[0].runEnv[i])
		}
	}
}

func TestFilterContext(t *testing.T) {
	ctx := t.TempDir()
	files := map[string]string{
		".dockerignore":         "*\n!go.mod\n!*.go\n*_test.go\n",
		"go.mod":                "module x\n",
		"main.go":               "package main\n",
		"main_test.go":          "package main\n",
		"README.md":             "docs\n",
		".git/config":           "secret\n",
		"tools/helper/x.go":     "package helper\n",
		"helm/chart/Chart.yaml": "name: x\n",
	}
	for name, body := range files {
		p := filepath.Join(ctx, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "ctx")
	n, err := filterContext(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dst, p)
			got = append(got, rel)
		}
		return nil
	})
	slices.Sort(got)
	if want := []string{"go.mod", "main.go"}; n != 2 || !slices.Equal(got, want) {
		t.Fatalf("context %v (%d), want %v", got, n, want)
	}
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `a "b" $c \d`, "new\nline"} {
		out, err := exec.Command("bash", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("round trip of %q gave %q", s, out)
		}
	}
}

// FuzzParseDockerfile: any text either fails to parse or resolves and goes through the
// policy check without panicking.
func FuzzParseDockerfile(f *testing.F) {
	f.Add([]byte(policyOK))
	f.Add([]byte("ARG A=${B:-x}\nFROM ${A}\nARG A\nENV X=$A Y=${X}\n"))
	f.Add([]byte("FROM scratch\nCOPY --from=b --chown=1:1 /a /\nHEALTHCHECK NONE\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		df, err := parseDockerfile(src, map[string]string{"OUT": "/o"})
		if err != nil {
			return
		}
		_ = checkPolicy(df)
	})
}
