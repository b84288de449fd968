// Command openapicheck proves that openapi.yaml and the Storage Element
// binary describe the same API.
//
// It loads and validates the document, compares the SE's route table
// (routes() in the Go source) with the documented operations, then starts the
// built binary on loopback ports in conditions it sets up itself (TLS
// certificate, JWKS, temp dirs, small size limits), drives every endpoint
// through the statuses of CONTRACT §2-§5, and validates every real response
// (status, headers, body) against the document.
//
// Usage:
//
//	openapicheck -bin /tmp/se -spec openapi.yaml -src .
//	openapicheck -spec openapi.yaml -src .          # static checks only
//
// Output: one line per failure, then "responses validated: N" and the
// per-status tally. Exit status 0 only when nothing failed; 1 on a failure;
// 2 on bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	Bin     string
	Spec    string
	Src     string
	Timeout time.Duration
	Keep    bool
	Verbose bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("openapicheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Bin, "bin", "", "path to the built SE binary; empty runs the static checks only")
	fs.StringVar(&cfg.Spec, "spec", "openapi.yaml", "path to the OpenAPI document")
	fs.StringVar(&cfg.Src, "src", ".", "directory of the SE's Go source holding routes()")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temp dir (SE logs, data) after the run")
	fs.BoolVar(&cfg.Verbose, "v", false, "print every request and its status")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() != 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapicheck:", err)
		os.Exit(2)
	}
	os.Exit(run(cfg, os.Stdout))
}

// run performs the whole check and returns the exit status.
func run(cfg config, out io.Writer) int {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	s, err := loadSpec(ctx, cfg.Spec)
	if err != nil {
		fmt.Fprintln(out, "FAIL", err)
		return 1
	}
	fmt.Fprintf(out, "openapicheck: %s is valid OpenAPI %s: %d paths, %d operations\n",
		cfg.Spec, s.Version, s.Doc.Paths.Len(), len(s.Operations))
	var failures []string
	failures = append(failures, checkRouteTable(s, cfg.Src, out)...)
	if cfg.Bin == "" {
		fmt.Fprintln(out, "openapicheck: no -bin: live check skipped")
		return report(out, nil, failures, start)
	}
	c, liveFailures := runLive(ctx, cfg, s, out)
	failures = append(failures, liveFailures...)
	return report(out, c, failures, start)
}

// checkRouteTable diffs routes() in the source with the document.
func checkRouteTable(s *spec, src string, out io.Writer) []string {
	served, err := readRoutes(src)
	if err != nil {
		return []string{"[routes] " + err.Error()}
	}
	var documented []string
	for _, o := range s.Operations {
		documented = append(documented, o.key())
	}
	diffs := routeDiff(served, documented)
	if len(diffs) == 0 {
		fmt.Fprintf(out, "openapicheck: routes() registers %d patterns, the same set as the document\n", len(served))
	}
	for i := range diffs {
		diffs[i] = "[routes] " + diffs[i]
	}
	return diffs
}

// runLive builds the world, runs both SE instances, and returns the checker
// (for the counts) and every failure.
func runLive(ctx context.Context, cfg config, s *spec, out io.Writer) (*checker, []string) {
	dir, err := os.MkdirTemp("", "openapicheck-")
	if err != nil {
		return nil, []string{"temp dir: " + err.Error()}
	}
	if cfg.Keep {
		fmt.Fprintln(out, "openapicheck: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	w, err := newWorld(dir)
	if err != nil {
		return nil, []string{"set up: " + err.Error()}
	}
	defer w.close()
	tok, err := mintTokens(w)
	if err != nil {
		return nil, []string{"tokens: " + err.Error()}
	}
	c := newChecker(s, w.httpClient(), out, cfg.Verbose)
	c.needles = []string{dir}
	sc := newScenario(c, tok)
	complete := true
	for _, phase := range []struct {
		mode string
		run  func(context.Context)
	}{
		{"edit", sc.editPhase},
		{"rw", sc.rwLifecycle},
	} {
		ran, err := runInstance(ctx, cfg.Bin, w, c, sc, phase.mode, phase.run)
		if err != nil {
			c.phase = phase.mode
			c.fail("%v", err)
		}
		complete = complete && ran
		if ctx.Err() != nil {
			c.fail("run exceeded -timeout %s", cfg.Timeout)
			break
		}
	}
	if complete { // a run that could not start says nothing about these
		if w.jwksHits.Load() == 0 {
			c.phase = "jwks"
			c.fail("the SE never fetched the JWKS")
		}
		c.phase = "coverage"
		checkCoverage(c)
	}
	return c, c.failures
}

// runInstance starts one SE, waits for readiness, runs the phase, stops it.
// ran says whether the phase itself ran.
func runInstance(ctx context.Context, bin string, w *world, c *checker, sc *scenario, mode string,
	phase func(context.Context)) (ran bool, err error) {
	c.phase = mode
	p, err := startReady(ctx, bin, w, c, mode)
	if err != nil {
		return false, err
	}
	c.baseURL = p.BaseURL
	sc.reset(mode, p.DataDir)
	phase(ctx)
	if err := p.stop(15 * time.Second); err != nil {
		return true, fmt.Errorf("%w; log:\n%s", err, p.logTail(20))
	}
	return true, nil
}

// startReady starts an SE and waits until it is ready. The free port is
// picked before the SE binds it, so another process may take it first: an SE
// that exits before it is ready gets one more try on a new port.
func startReady(ctx context.Context, bin string, w *world, c *checker, mode string) (*seProcess, error) {
	var lastErr error
	for range 2 {
		p, err := w.startSE(bin, mode, mode)
		if err != nil {
			return nil, err
		}
		err = p.waitReady(ctx, c.client, 30*time.Second)
		if err == nil {
			return p, nil
		}
		lastErr = err
		select {
		case <-p.exited:
			continue // retry: it may have lost the port
		default:
			_ = p.stop(10 * time.Second)
			return nil, err
		}
	}
	return nil, lastErr
}

// reset forgets the files of the previous instance.
func (s *scenario) reset(mode, dataDir string) {
	s.expected = mode
	s.dataDir = dataDir
	s.active = map[string]int64{}
	s.byName = map[string]stored{}
}

// editPhase is everything the edit-mode instance runs.
func (s *scenario) editPhase(ctx context.Context) {
	s.public(ctx)
	s.unknownPaths(ctx)
	s.auth(ctx)
	s.uploads(ctx)
	if len(s.byName) < 4 {
		s.c.fail("uploads failed; the file checks need them")
		return
	}
	s.info(ctx, allowedByMode["edit"])
	s.listing(ctx)
	s.metadata(ctx)
	s.patching(ctx)
	s.downloads(ctx)
	s.deleting(ctx)
	s.info(ctx, allowedByMode["edit"])
	s.editTransitions(ctx)
	s.reconcile(ctx)
	s.fillUp(ctx)
	s.info(ctx, allowedByMode["edit"])
	s.surface(ctx)
	s.metrics(ctx)
}

// checkCoverage requires every documented operation to have at least one
// validated answer with a 2xx (or 304) status; statuses never observed are
// listed, as information.
func checkCoverage(c *checker) {
	for _, o := range c.spec.Operations {
		seen := c.observed[o.ID]
		if !slices.ContainsFunc(slices.Collect(maps.Keys(seen)), func(st int) bool { return st < 400 }) {
			c.fail("operation %s (%s %s) never got a validated success", o.ID, o.Method, o.Path)
		}
	}
}

// report prints the summary and returns the exit status.
func report(out io.Writer, c *checker, failures []string, start time.Time) int {
	if c != nil {
		fmt.Fprintf(out, "responses validated: %d\n", c.total)
		fmt.Fprintf(out, "by status: %s\n", tallyLine(c.tally))
		fmt.Fprintf(out, "operations exercised: %d/%d\n", len(c.observed), len(c.spec.Operations))
		if missing := unobserved(c); len(missing) > 0 {
			fmt.Fprintf(out, "documented statuses not provoked: %s\n", strings.Join(missing, ", "))
		}
	}
	fmt.Fprintf(out, "time: %s\n", time.Since(start).Round(100*time.Millisecond))
	if len(failures) == 0 {
		fmt.Fprintln(out, "openapicheck: OK")
		return 0
	}
	fmt.Fprintf(out, "openapicheck: %d failures:\n", len(failures))
	for _, f := range failures {
		fmt.Fprintln(out, "  -", f)
	}
	return 1
}

// tallyLine renders the per-status counts in status order.
func tallyLine(tally map[int]int) string {
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(tally)) {
		parts = append(parts, fmt.Sprintf("%d=%d", st, tally[st]))
	}
	return strings.Join(parts, " ")
}

// unobserved lists documented operation statuses no response showed.
func unobserved(c *checker) []string {
	var out []string
	for _, o := range c.spec.Operations {
		for code := range o.Op.Responses.Map() {
			var st int
			if _, err := fmt.Sscanf(code, "%d", &st); err != nil || c.observed[o.ID][st] {
				continue
			}
			out = append(out, o.ID+" "+code)
		}
	}
	slices.Sort(out)
	return out
}
