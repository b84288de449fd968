// BuildKit linter, run in-process and offline.
//
// dockerfile2llb.DockerfileLint is the function BuildKit's Dockerfile frontend runs for
// `docker build --check`. It wants an image metadata resolver for every base image (to
// check platforms and to learn the base image's ENV); a real one would reach a registry,
// which CI cannot. offlineResolver answers every reference with a minimal linux config of
// the host's architecture, so all rules run and nothing leaves the machine. Rules that need
// the real base image (InvalidBaseImagePlatform against a foreign platform, UndefinedVar
// for variables only the base image defines) are therefore weaker than in a real build;
// everything that reads the Dockerfile itself is exact.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/opencontainers/go-digest"
)

type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{}},
	})
	if err != nil {
		return "", "", nil, fmt.Errorf("offline image config for %s: %w", ref, err)
	}
	return ref, digest.FromBytes(cfg), cfg, nil
}

// buildkitLint returns one formatted line per lint warning (and per build error, which
// BuildKit reports separately: a Dockerfile that does not parse is a finding too).
func buildkitLint(src []byte, filename string) ([]string, error) {
	sm := llb.NewSourceMap(nil, filename, "Dockerfile", src)
	sm.Definition = &llb.Definition{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), src, dockerfile2llb.ConvertOpt{
		SourceMap:    sm,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		return nil, fmt.Errorf("buildkit lint: %w", err)
	}
	var out []string
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, linter.LintFormatShort(w.RuleName, w.Detail, line))
	}
	sort.Strings(out)
	if res.Error != nil {
		out = append(out, "build error: "+res.Error.Message)
	}
	return out, nil
}

// buildkitVersion names the linter actually compiled in, for the CI log.
func buildkitVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "github.com/moby/buildkit"
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/moby/buildkit" {
			return dep.Path + " " + dep.Version
		}
	}
	return "github.com/moby/buildkit"
}
