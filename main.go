// main.go — the one binary and its subcommands:
//
//	se [serve]      run the Storage Element from SE_* environment variables
//	se dev          run a throwaway SE with no configuration (dev.go)
//	se token        mint a token with the key `se dev` created (dev.go)
//	se healthcheck  exit 0 when /health/live answers (Docker HEALTHCHECK in scratch)
//	se version      print the version
//
// Start-up order of serve: config → listener (readiness says fail) → WAL recovery →
// index build → ready → background work (GC, reconciliation). Shutdown on
// SIGTERM/SIGINT drains requests within SE_SHUTDOWN_TIMEOUT, then cancels what is left
// (an interrupted upload rolls itself back).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

const exitConfig = 2

func main() {
	os.Exit(runCommand(os.Args[1:], os.Stdout, os.Stderr))
}

func runCommand(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveFromEnv(stderr)
	case "dev":
		return runDev(args, stdout, stderr)
	case "token":
		return runToken(args, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, version)
		return 0
	}
	fmt.Fprintf(stderr, "se: unknown command %q (serve, dev, token, healthcheck, version)\n", cmd)
	return exitConfig
}

func serveFromEnv(stderr io.Writer) int {
	cfg, err := loadConfig(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "se: configuration error: %v\n", err)
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, cfg.Logger(stderr), nil); err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "se: configuration error: %v\n", err)
			return exitConfig
		}
		fmt.Fprintf(stderr, "se: %v\n", err)
		return 1
	}
	return 0
}

// app is one running SE: everything serve wires together.
type app struct {
	cfg      *Config
	log      *slog.Logger
	store    *store
	jwks     *jwksClient
	dep      *depHealth
	health   *healthChecker
	metrics  *seMetrics
	server   *server
	recon    *reconciler
	gc       *gcRunner
	certs    *certReloader
	listener net.Listener
	// replicated mode only
	election  *election
	refresher *followerRefresher
	// background work started when this process becomes the writer
	writerWork func()
}

// newApp builds every component from the configuration without starting anything.
func newApp(cfg *Config, log *slog.Logger) (*app, error) {
	if cfg.MaxCapacity == 0 {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		c, err := FilesystemCapacity(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("SE_MAX_CAPACITY default: %w", err)
		}
		if c < cfg.MaxFileSize {
			return nil, &configError{Variable: "SE_MAX_CAPACITY", Problem: fmt.Sprintf("unset, and the filesystem of SE_DATA_DIR (%d bytes) is smaller than SE_MAX_FILE_SIZE", c)}
		}
		cfg.MaxCapacity = c
	}
	seed, _ := parseMode(cfg.Mode)
	replicated := cfg.ReplicaMode == "replicated"
	st, err := openStore(storeOptions{
		DataDir: cfg.DataDir, WALDir: cfg.WALDir, SeedMode: seed,
		MaxFileSize: cfg.MaxFileSize, MaxCapacity: cfg.MaxCapacity, Logger: log, Replicated: replicated,
	})
	if err != nil {
		return nil, err
	}
	certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, store: st, certs: certs}
	a.jwks = newJWKSClient(jwksOptions{URL: cfg.JWKSURL, RootCAs: cfg.JWKSRootCAs, Logger: log})
	a.metrics = newSEMetrics(st, version, time.Now())
	a.dep, err = newDepHealth(a.metrics.registry, depHealthOptions{
		Name: cfg.DepHealthName, Group: cfg.DepHealthGroup, Dependency: cfg.DepHealthDepName,
		URL: cfg.JWKSURL, Critical: true, Interval: cfg.DepHealthCheckInterval, RootCAs: cfg.JWKSRootCAs,
	})
	if err != nil {
		return nil, fmt.Errorf("dependency health: %w", err)
	}
	a.recon = newReconciler(st, a.metrics, log)
	a.gc = newGCRunner(st, a.metrics, log)
	a.health = &healthChecker{
		store: st, dataDir: cfg.DataDir, walDir: cfg.WALDir, reconciling: a.recon.running,
		dependency: func() (bool, bool) { h, c, _ := a.dep.State(); return h, c },
	}
	a.server = &server{
		cfg: cfg, store: st, metrics: a.metrics, health: a.health, reconcile: a.recon, log: log,
		version: version, now: time.Now,
		verifier: &tokenVerifier{Keys: a.jwks, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience},
	}
	if replicated {
		a.election = newElection(cfg.DataDir, cfg.AdvertiseAddr, cfg.ElectionRetryInterval, log, a.becomeLeader)
		a.server.election = a.election
		a.server.forward = newForwarder(a.election, st, cfg.StorageID, cfg.PeerRootCAs, cfg.PeerTLSInsecure, log)
		a.refresher = newFollowerRefresher(st, cfg.IndexRefreshInterval, log)
	}
	a.metrics.registry.GaugeVecFunc("se_replica_role", "This process's role (1 for the current one).", []string{"role"},
		func(emit func(float64, ...string)) {
			cur := a.server.role()
			for _, r := range []replicaRole{roleStandalone, roleFollower, roleLeader} {
				v := 0.0
				if r == cur {
					v = 1
				}
				emit(v, r.String())
			}
		})
	a.server.routes()
	return a, nil
}

// serve runs an SE until ctx is cancelled. ready, when not nil, receives the bound
// address once the listener is up (dev mode and tests).
func serve(ctx context.Context, cfg *Config, log *slog.Logger, ready chan<- string) error {
	a, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	a.listener = ln
	if ready != nil {
		ready <- ln.Addr().String()
	}
	return a.run(ctx)
}

func (a *app) httpServer() *http.Server {
	return &http.Server{
		Handler: a.server,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: a.certs.GetCertificate,
		},
		// Header and idle timeouts only: bodies get per-read/per-write idle deadlines
		// (telemetry.go) so slow WAN transfers of any size can finish.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
}

func (a *app) run(ctx context.Context) error {
	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopBackground(); wg.Wait() }()
	wg.Go(func() { a.jwks.Run(bg) })
	wg.Go(func() { a.dep.Run(bg) })
	wg.Go(func() { a.health.run(bg) })

	srv := a.httpServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(a.listener, "", "") }()
	a.log.Info("listening", "addr", a.listener.Addr().String(), "storage_id", a.cfg.StorageID, "version", version)

	startErr := make(chan error, 1)
	go func() { startErr <- a.startStore(bg, &wg) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case err := <-startErr:
		if err != nil {
			srv.Close()
			return err
		}
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		select {
		case err := <-serveErr:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
		}
	}
	return a.shutdown(srv)
}

// startStore brings the store up. Standalone: recover, index, write. Replicated: index
// as a follower, then run the election; winning it makes this process the writer.
func (a *app) startStore(bg context.Context, wg *sync.WaitGroup) error {
	a.writerWork = func() {
		wg.Go(func() { a.gc.loop(bg, a.cfg.GCInterval) })
		wg.Go(func() { a.recon.loop(bg, a.cfg.ReconcileInterval) })
	}
	if a.election == nil {
		if err := a.store.start(bg); err != nil {
			return err
		}
		a.writerWork()
		return nil
	}
	if err := a.store.startReader(bg); err != nil {
		return err
	}
	wg.Go(func() { a.election.run(bg) })
	wg.Go(func() { a.refresher.run(bg, func() bool { return a.election.currentRole() == roleFollower }) })
	return nil
}

// becomeLeader is the election's takeover step: the store becomes the writer, then GC
// and reconciliation start (they run only where writes happen).
func (a *app) becomeLeader(ctx context.Context) error {
	if err := a.store.takeOver(ctx); err != nil {
		return err
	}
	a.writerWork()
	return nil
}

func (a *app) shutdown(srv *http.Server) error {
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if a.election != nil && a.election.currentRole() == roleLeader {
		// Writes stop and finish first, then the lock goes, so a follower takes over
		// within one retry interval while this process still drains reads.
		a.store.stepDown(stepDownGrace(a.cfg), a.election.release)
		a.log.Info("leader lock released")
	}
	if err := srv.Shutdown(ctx); err != nil {
		a.log.Warn("graceful shutdown timed out; closing remaining connections", "err", err)
		srv.Close()
		// Close does not wait for handlers: give interrupted uploads a moment to roll
		// back, so a clean stop leaves no temp file or pending WAL entry behind.
		a.waitHandlers(5 * time.Second)
	}
	a.log.Info("stopped")
	return nil
}

func (a *app) waitHandlers(limit time.Duration) {
	done := make(chan struct{})
	go func() { a.server.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		a.log.Warn("handlers still running at exit; WAL recovery will finish their cleanup")
	}
}

// stepDownGrace is how long a SIGTERMed leader lets writes in flight finish before it
// releases the lock: short, so a follower takes over within about one retry interval.
// Short sections that change the data dir always finish (store.stepDown); uploads still
// streaming after the grace roll back and their clients retry against the new leader.
func stepDownGrace(cfg *Config) time.Duration {
	return min(cfg.ShutdownTimeout/2, cfg.ElectionRetryInterval, 2*time.Second)
}

// every runs fn each interval until ctx ends or fn returns false. The first run is one
// interval after the call.
func every(ctx context.Context, interval time.Duration, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}

// runHealthcheck probes /health/live on the local listener. It skips certificate
// verification because it only ever talks to its own process over loopback.
func runHealthcheck(stderr io.Writer) int {
	port := "8010"
	if p, ok := os.LookupEnv("SE_PORT"); ok && p != "" {
		port = p
	}
	host := "127.0.0.1"
	if b, ok := os.LookupEnv("SE_BIND_ADDR"); ok && b != "" && b != "0.0.0.0" && b != "::" {
		host = b
	}
	client := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // own process on loopback
		},
	}
	resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/health/live")
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: status %d\n", resp.StatusCode)
		return 1
	}
	return 0
}
