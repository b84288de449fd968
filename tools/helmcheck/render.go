// `helm lint` and `helm template` through the Helm Go SDK, in-process.
//
// The chart is read from disk and values are merged exactly as the helm CLI merges -f files
// and --set flags (pkg/cli/values). Lint is pkg/chart/v2/lint.RunAll, the function behind
// `helm lint`. Rendering follows what `helm template` does inside pkg/action (Install in
// client-only dry-run): default capabilities at the requested Kubernetes version, the
// chart's kubeVersion constraint, dependency processing, values coalesced and validated
// against values.schema.json, pkg/engine rendering, NOTES.txt split off, manifests split
// and sorted in install order. It calls those packages directly instead of pkg/action,
// which drags in the cluster client, OCI registry, SQL storage and Wasm plugin runtime and
// roughly doubles a cold build of this tool. No cluster, no plugin, no download.
package main

import (
	"fmt"
	"path"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/getter"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

const (
	releaseName      = "se"
	releaseNamespace = "artstore"
	notesFile        = "NOTES.txt"
)

// renderer holds what every scenario shares.
type renderer struct {
	chartDir    string
	kubeVersion *common.KubeVersion
}

func newRenderer(chartDir, kubeVersion string) (*renderer, error) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version %q: %w", kubeVersion, err)
	}
	return &renderer{chartDir: chartDir, kubeVersion: kv}, nil
}

// mergeValues merges value files and --set style assignments like the helm CLI does.
func mergeValues(files, sets []string) (map[string]any, error) {
	opts := values.Options{ValueFiles: files, Values: sets}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return nil, fmt.Errorf("merge values: %w", err)
	}
	return vals, nil
}

// lint runs `helm lint --strict`: every message at warning level or above is a finding.
// Info messages (such as "icon is recommended") are returned separately for the log.
func (r *renderer) lint(vals map[string]any) (findings, infos []string) {
	res := lint.RunAll(r.chartDir, vals, releaseNamespace, lint.WithKubeVersion(r.kubeVersion))
	for _, m := range res.Messages {
		line := fmt.Sprintf("[%s] %s: %v", severityName(m.Severity), m.Path, m.Err)
		if m.Severity >= support.WarningSev {
			findings = append(findings, line)
		} else {
			infos = append(infos, line)
		}
	}
	return findings, infos
}

func severityName(sev int) string {
	switch sev {
	case support.InfoSev:
		return "INFO"
	case support.WarningSev:
		return "WARNING"
	case support.ErrorSev:
		return "ERROR"
	}
	return "UNKNOWN"
}

// rendered is the output of one `helm template`.
type rendered struct {
	docs  []string // manifests in install order
	notes string
}

// template renders the chart with the given overrides, as `helm template se CHART -n artstore`.
func (r *renderer) template(vals map[string]any) (*rendered, error) {
	chrt, err := loader.Load(r.chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *r.kubeVersion
	if c := chrt.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, rendering for %s", c, caps.KubeVersion.String())
	}
	if err := chartutil.ProcessDependencies(chrt, vals); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	opts := common.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true}
	renderVals, err := util.ToRenderValuesWithSchemaValidation(chrt, vals, opts, caps, false)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	files, err := engine.Render(chrt, renderVals)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	out := &rendered{}
	for name, body := range files {
		if strings.HasSuffix(name, notesFile) {
			if name == path.Join(chrt.Name(), "templates", notesFile) {
				out.notes = body
			}
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if len(hooks) > 0 {
		return nil, fmt.Errorf("render: chart has %d hook(s); it is meant to have none", len(hooks))
	}
	for _, m := range manifests {
		if strings.TrimSpace(m.Content) != "" {
			out.docs = append(out.docs, "# Source: "+m.Name+"\n"+m.Content)
		}
	}
	return out, nil
}
