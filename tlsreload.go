// tlsreload.go — the serving certificate, reloaded from SE_TLS_CERT/SE_TLS_KEY when the
// files change (cert-manager renews them in place, usually by swapping a symlink).
//
// Invariant: a handshake always gets the last certificate that loaded successfully; a
// half-written or mismatched pair on disk is logged and ignored until it loads.
package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval bounds how often handshakes stat the files.
const certCheckInterval = time.Second

type fileStamp struct {
	mod  time.Time
	size int64
}

type certReloader struct {
	certPath, keyPath string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamps    [2]fileStamp
	checkedAt time.Time
}

func newCertReloader(certPath, keyPath string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certPath: certPath, keyPath: keyPath, log: log}
	stamps, err := c.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	c.cert, c.stamps, c.checkedAt = &cert, stamps, time.Now()
	return c, nil
}

func (c *certReloader) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, p := range []string{c.certPath, c.keyPath} {
		st, err := os.Stat(p)
		if err != nil {
			return out, fmt.Errorf("stat TLS file: %w", err)
		}
		out[i] = fileStamp{mod: st.ModTime(), size: st.Size()}
	}
	return out, nil
}

// GetCertificate is the tls.Config hook.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checkedAt) >= certCheckInterval {
		c.checkedAt = time.Now()
		c.reloadLocked()
	}
	return c.cert, nil
}

func (c *certReloader) reloadLocked() {
	stamps, err := c.stat()
	if err != nil || stamps == c.stamps {
		return
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		c.log.Warn("TLS certificate changed on disk but does not load; keeping the previous one", "err", err)
		return
	}
	c.cert, c.stamps = &cert, stamps
	c.log.Info("TLS certificate reloaded")
}
