// Command loadtool measures the Storage Element against the machine it runs on
// (issue 6): it builds the SE as a stripped static binary, starts it on loopback with a
// throwaway certificate, signing key and JWKS, drives it over HTTPS with keep-alive
// clients, measures the machine's own limits on the same filesystem in the same run,
// and prints every SE figure beside its limit with the ratio and the target.
//
// Usage, from the repository root:
//
//	(cd tools/loadtool && go run . -src ../..)            # full run: N=100k, 1 GiB, ~5–10 min
//	(cd tools/loadtool && go run . -src ../.. -quick)     # smoke run: small N and sizes, < 1 min
//	(cd tools/loadtool && go run . -url https://se:8010 -token "$TOKEN" -cacert ca.pem -dir /data/tmp)
//
// With -url the tool drives a running SE it did not start: the transfer and 4 KiB
// figures only (no RSS, restart, list-growth or binary figures), with the limits
// measured in -dir, which should then be on the SE's filesystem of the same machine.
//
// Exit status: 0 when the run completed (whether or not every target is met), 1 when
// a measurement failed, 2 for bad flags. Every SE process is stopped by its PID; the
// run directory is removed unless -keep.
package main

import (
	"bufio"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the flags of one run.
type options struct {
	Src, Bin, Dir, URL, Token, CACert string
	Keep, Quick                       bool
	N, NSmall                         int
	BigSize                           int64
	SmallSize, Clients, Rounds        int
	Duration, Settle, ReadyLimit      time.Duration
	ListSamples, Restarts, SeedBlob   int
	Phases                            map[string]bool
}

// allPhases are the groups of figures -phases selects from, in run order.
var allPhases = []string{"transfer", "small", "restart", "list"}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Src, "src", "", "SE repository root to build from (default: found upward from the working directory)")
	fs.StringVar(&o.Bin, "bin", "", "use this SE binary instead of building one (its size is reported as is)")
	fs.StringVar(&o.Dir, "dir", "", "parent of the run directory; the SE data dir and the limits live there (default: the system temp dir)")
	fs.StringVar(&o.URL, "url", "", "drive a running SE at this base URL instead of starting one")
	fs.StringVar(&o.Token, "token", "", "bearer token for -url (scopes files:read, files:write)")
	fs.StringVar(&o.CACert, "cacert", "", "PEM bundle the -url server's certificate chains to")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run directory (data, logs) at the end")
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: small N, sizes and durations (explicit flags still win)")
	fs.IntVar(&o.N, "n", 100_000, "files in the large instance (restart, RSS per file, list)")
	fs.IntVar(&o.NSmall, "n-small", 10_000, "files in the small instance (list baseline)")
	fs.Int64Var(&o.BigSize, "big", 1<<30, "size in bytes of the big upload and download")
	fs.IntVar(&o.SmallSize, "small", 4<<10, "size in bytes of the small uploads and downloads")
	fs.IntVar(&o.Clients, "clients", 16, "concurrent keep-alive clients (and raw goroutines) for small files")
	fs.IntVar(&o.Rounds, "rounds", 2, "alternating rounds of each SE figure and its limit (best kept)")
	fs.DurationVar(&o.Duration, "duration", 8*time.Second, "length of each small-file load")
	fs.DurationVar(&o.Settle, "settle", time.Second, "wait after ready before reading RSS")
	fs.DurationVar(&o.ReadyLimit, "ready-limit", 2*time.Minute, "longest wait for an SE to become ready")
	fs.IntVar(&o.ListSamples, "list-samples", 1000, "timed requests per list combination and instance")
	fs.IntVar(&o.Restarts, "restarts", 3, "restarts of the large instance (median kept)")
	fs.IntVar(&o.SeedBlob, "seed-blob", 1024, "size in bytes of each seeded file")
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma-separated subset of "+strings.Join(allPhases, ",")+" (profiling one figure)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.Phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		if !slices.Contains(allPhases, p) {
			return o, fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(allPhases, ","))
		}
		o.Phases[p] = true
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quick("n", func() { o.N = 3000 })
		quick("n-small", func() { o.NSmall = 1500 })
		quick("big", func() { o.BigSize = 64 << 20 })
		quick("rounds", func() { o.Rounds = 1 })
		quick("duration", func() { o.Duration = time.Second })
		quick("settle", func() { o.Settle = 200 * time.Millisecond })
		quick("list-samples", func() { o.ListSamples = 30 })
		quick("restarts", func() { o.Restarts = 1 })
	}
	return o, validate(o)
}

func validate(o options) error {
	switch {
	case o.N < 1 || o.NSmall < 1:
		return errors.New("-n and -n-small must be at least 1")
	case o.BigSize < 1 || o.SmallSize < 1:
		return errors.New("-big and -small must be at least 1 byte")
	case o.Clients < 1 || o.Rounds < 1 || o.ListSamples < 1 || o.Restarts < 1:
		return errors.New("-clients, -rounds, -list-samples and -restarts must be at least 1")
	case o.Duration <= 0:
		return errors.New("-duration must be positive")
	case o.URL != "" && o.Token == "":
		return errors.New("-url needs -token")
	}
	return nil
}

func realMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "loadtool: %v\n", err)
		}
		return 2
	}
	r := &run{opt: o, log: func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}}
	began := time.Now()
	err = r.execute(stdout)
	r.stopAll()
	if r.world != nil {
		r.world.close()
	}
	if r.opt.Dir != "" && !o.Keep {
		os.RemoveAll(r.opt.Dir)
	} else if r.opt.Dir != "" {
		r.log("run directory kept: %s", r.opt.Dir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtool: %v\n", err)
		return 1
	}
	r.log("run took %s", time.Since(began).Round(time.Second))
	return 0
}

// execute prepares the run directory and the world, then runs every phase.
func (r *run) execute(stdout io.Writer) error {
	dir, err := os.MkdirTemp(r.opt.Dir, "loadtool-")
	if err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	r.opt.Dir = dir
	r.stopOnSignal()
	if r.opt.URL != "" {
		return r.executeRemote(stdout)
	}
	if err := r.prepareBinary(); err != nil {
		return err
	}
	if r.world, err = newWorld(dir); err != nil {
		return err
	}
	r.roots = r.world.RootCAs
	if r.token, err = r.world.mintToken(3 * time.Hour); err != nil {
		return err
	}
	r.log("run directory %s, SE binary %s (%s), GOMAXPROCS %d", dir, r.opt.Bin, human(r.res.BinarySize), runtime.GOMAXPROCS(0))

	ops, err := r.instance("ops")
	if err != nil {
		return err
	}
	if r.res.EmptyReady, err = r.startReady(ops); err != nil {
		return err
	}
	if r.res.RSSEmpty, err = r.settledRSS(ops); err != nil {
		return err
	}
	r.log("empty SE ready in %s, RSS %s", ms(r.res.EmptyReady), human(r.res.RSSEmpty))
	if r.opt.Phases["transfer"] {
		if err := r.phaseBulk(r.target(ops), ops.pid()); err != nil {
			return err
		}
	}
	if r.opt.Phases["small"] {
		if err := r.phaseSmall(r.target(ops)); err != nil {
			return err
		}
	}
	if err := ops.stop(10 * time.Second); err != nil {
		return err
	}
	if r.opt.Phases["restart"] || r.opt.Phases["list"] {
		if err := r.executeSeeded(); err != nil {
			return err
		}
	}
	r.report(stdout)
	return nil
}

// executeSeeded runs the phases on seeded data directories: restart and list.
func (r *run) executeSeeded() error {
	small, err := r.instance("n-small")
	if err != nil {
		return err
	}
	large, err := r.instance("n-large")
	if err != nil {
		return err
	}
	if err := r.phaseSeed(small, large); err != nil {
		return err
	}
	if r.opt.Phases["restart"] {
		if err := r.phaseRestart(large); err != nil {
			return err
		}
	} else {
		if _, err := r.startReady(large); err != nil {
			return err
		}
		if err := r.checkTotals(large, r.opt.N); err != nil {
			return err
		}
	}
	if !r.opt.Phases["list"] {
		return nil
	}
	if _, err := r.startReady(small); err != nil {
		return err
	}
	if err := r.checkTotals(small, r.opt.NSmall); err != nil {
		return err
	}
	return r.phaseList(small, large)
}

// executeRemote measures a running SE at -url: transfers and small files only. The
// clients trust the system roots, -cacert, and the run's own certificate (the bare
// baseline server's).
func (r *run) executeRemote(stdout io.Writer) error {
	var err error
	if r.world, err = newWorld(r.opt.Dir); err != nil {
		return err
	}
	if r.roots, err = x509.SystemCertPool(); err != nil {
		r.roots = x509.NewCertPool()
	}
	r.roots.AddCert(r.world.Cert)
	if r.opt.CACert != "" {
		pem, err := os.ReadFile(r.opt.CACert)
		if err != nil {
			return fmt.Errorf("read -cacert: %w", err)
		}
		if !r.roots.AppendCertsFromPEM(pem) {
			return errors.New("-cacert holds no certificate")
		}
	}
	t := target{BaseURL: strings.TrimRight(r.opt.URL, "/"), Token: r.opt.Token}
	if r.opt.Phases["transfer"] {
		if err := r.phaseBulk(t, 0); err != nil {
			return err
		}
	}
	if r.opt.Phases["small"] {
		if err := r.phaseSmall(t); err != nil {
			return err
		}
	}
	r.report(stdout)
	return nil
}

// stopOnSignal stops every SE by PID and removes the run directory on SIGINT/SIGTERM.
func (r *run) stopOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-ch
		r.log("%s: stopping", sig)
		r.stopAll()
		if !r.opt.Keep {
			os.RemoveAll(r.opt.Dir)
		}
		os.Exit(130)
	}()
}

// prepareBinary builds the stripped static binary the way the Dockerfile does, unless
// -bin names one.
func (r *run) prepareBinary() error {
	if r.opt.Bin == "" {
		src, err := repoRoot(r.opt.Src)
		if err != nil {
			return err
		}
		out := filepath.Join(r.opt.Dir, "bin", "se")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build SE in %s: %w\n%s", src, err, msg)
		}
		r.opt.Bin = out
	}
	st, err := os.Stat(r.opt.Bin)
	if err != nil {
		return fmt.Errorf("SE binary: %w", err)
	}
	r.res.BinaryPath, r.res.BinarySize = r.opt.Bin, st.Size()
	return nil
}

// seModule is the module path of the SE's go.mod.
const seModule = "artstore/storage-element"

// repoRoot returns src, or the nearest directory upward from the working directory
// whose go.mod declares the SE module.
func repoRoot(src string) (string, error) {
	if src != "" {
		if !declaresSEModule(filepath.Join(src, "go.mod")) {
			return "", fmt.Errorf("-src %s: no go.mod of module %s", src, seModule)
		}
		return src, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if declaresSEModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory; use -src", seModule)
		}
		dir = parent
	}
}

// declaresSEModule reports whether the go.mod at path declares exactly the SE module.
func declaresSEModule(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == seModule
		}
	}
	return false
}

// report prints the table and the details.
func (r *run) report(w io.Writer) {
	rows := buildRows(r.opt, r.res)
	fmt.Fprintf(w, "\n## SE vs the machine's limits (%s, GOMAXPROCS %d, %s)\n\n", runtime.GOARCH, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	writeTable(w, rows)
	if r.res.List != nil {
		fmt.Fprintln(w)
		writeListDetail(w, r.opt, r.res)
	}
	if len(r.res.Ready) > 0 {
		fmt.Fprintf(w, "\nrestart-to-ready: %s (an empty SE: %s); raw sidecar read: %s; seeding %d + %d files took %s\n",
			durations(r.res.Ready), ms(r.res.EmptyReady), durations(r.res.RawRead), r.opt.NSmall, r.opt.N, r.res.SeedTime.Round(time.Millisecond))
	}
	met, total := countMet(rows)
	fmt.Fprintf(w, "\ntargets met: %d of %d\n", met, total)
}
