// seproc.go — one SE process started from the built binary, on loopback, in its own
// data and WAL directories.
//
// Invariants:
//   - The SE gets a clean environment: inherited SE_* variables are dropped so the
//     operator's shell cannot change what is measured.
//   - Background work that would load the server during a measurement (GC and
//     reconciliation, hourly by default) is pushed out to 720h.
//   - Every wait is bounded; the SE is stopped by its PID (SIGTERM, then SIGKILL after a
//     grace period) and dies with the tool (Pdeathsig).
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// seConfig is what one SE instance is started with.
type seConfig struct {
	Bin         string
	Name        string // storage id suffix and directory name
	Root        string // holds data/, wal/ and se.log
	MaxFileSize int64
}

// seProcess is one running SE.
type seProcess struct {
	cfg     seConfig
	BaseURL string
	DataDir string
	WALDir  string
	logFile string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	started time.Time
}

// newSEProcess prepares (does not start) an SE on a free loopback port. The same value
// can be started again after stop, on the same directories and port.
func newSEProcess(cfg seConfig) (*seProcess, error) {
	p := &seProcess{
		cfg: cfg, DataDir: filepath.Join(cfg.Root, "data"), WALDir: filepath.Join(cfg.Root, "wal"),
		logFile: filepath.Join(cfg.Root, "se.log"),
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.Root, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = port
	p.BaseURL = "https://127.0.0.1:" + strconv.Itoa(port)
	return p, nil
}

// freePort asks the kernel for an unused loopback port; a collision shows as an early exit.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs `bin serve`; started is the moment just before the exec.
func (p *seProcess) start(w *World) error {
	logFile, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open SE log: %w", err)
	}
	p.cmd = exec.Command(p.cfg.Bin, "serve")
	p.cmd.Env = append(cleanEnv(),
		"SE_STORAGE_ID=loadtool-"+p.cfg.Name,
		"SE_DATA_DIR="+p.DataDir,
		"SE_WAL_DIR="+p.WALDir,
		"SE_TLS_CERT="+w.CertFile,
		"SE_TLS_KEY="+w.KeyFile,
		"SE_JWKS_URL="+w.JWKSURL,
		"SE_PORT="+strconv.Itoa(p.port),
		"SE_BIND_ADDR=127.0.0.1",
		"SE_MAX_FILE_SIZE="+strconv.FormatInt(p.cfg.MaxFileSize, 10),
		"SE_LOG_LEVEL=warn",
		"SE_LOG_FORMAT=text",
		"SE_GC_INTERVAL=720h",
		"SE_RECONCILE_INTERVAL=720h",
		"SE_SHUTDOWN_TIMEOUT=5s",
	)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.exited = make(chan struct{})
	p.exitErr = nil
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s serve: %w", p.cfg.Bin, err)
	}
	exited := p.exited
	go func() {
		err := p.cmd.Wait()
		logFile.Close()
		p.exitErr = err
		close(exited)
	}()
	return nil
}

func (p *seProcess) pid() int { return p.cmd.Process.Pid }

// cleanEnv is the tool's environment without SE_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SE_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls /health/ready every poll until 200 and returns the time from the
// exec to that answer.
func (p *seProcess) waitReady(client *http.Client, poll, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	lastErr := errors.New("no answer yet")
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.BaseURL+"/health/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			drain(resp)
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started), nil
			}
			lastErr = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			lastErr = err
		}
		select {
		case <-p.exited:
			return 0, fmt.Errorf("SE %s exited before ready (%v); log:\n%s", p.cfg.Name, p.exitErr, p.logTail(20))
		case <-ctx.Done():
			return 0, fmt.Errorf("SE %s not ready within %s (last: %v); log:\n%s", p.cfg.Name, limit, lastErr, p.logTail(20))
		case <-time.After(poll):
		}
	}
}

// stop sends SIGTERM to the SE's PID, waits up to grace, then SIGKILLs it.
func (p *seProcess) stop(grace time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.exited:
		return fmt.Errorf("SE %s had already exited: %v", p.cfg.Name, p.exitErr)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("SE %s (pid %d) ignored SIGTERM for %s; killed", p.cfg.Name, p.pid(), grace)
	}
}

// running reports whether the process has been started and not exited.
func (p *seProcess) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// logTail returns the last n lines of the SE's log.
func (p *seProcess) logTail(n int) string {
	data, err := os.ReadFile(p.logFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
