// Well-formedness of the values the chart puts into SE_* variables, checked the way the
// binary will parse them (CONTRACT §8), so a template that mangles a value (a YAML number
// printed as 2.147483648e+09, a quoted boolean, an http JWKS URL) fails here and not at
// the pod's start.
package main

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// parseSize: digits only, no leading zero, 1..2^50 (config.go parseSize).
func parseSize(v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > 1<<50 || v[0] == '0' || strings.ContainsAny(v, "+-") {
		return fmt.Errorf("not a byte count in 1..2^50")
	}
	return nil
}

func parseDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		return fmt.Errorf("not positive")
	}
	return err
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("not one of %v", allowed)
		}
		return nil
	}
}

func parsePort(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("not a port")
	}
	return nil
}

// parseJWKSURL: absolute https, or http to a loopback host only (CONTRACT §11).
func parseJWKSURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("no host")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("plain http to a non-loopback host")
	}
	return fmt.Errorf("scheme %q", u.Scheme)
}

// parseHostPort accepts host:port, with $(VAR) references standing for a DNS label.
func parseHostPort(v string) error {
	host, port, err := net.SplitHostPort(strings.ReplaceAll(v, "$("+podNameHelper+")", "pod-0"))
	if err != nil {
		return err
	}
	if host == "" || strings.ContainsAny(host, "$() ") {
		return fmt.Errorf("bad host %q", host)
	}
	return parsePort(port)
}

func parseHost(v string) error {
	if strings.ContainsAny(v, ":/ ") && net.ParseIP(v) == nil {
		return fmt.Errorf("want a host or IP without port")
	}
	return nil
}

func parseAbsPath(v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("not an absolute path")
	}
	return nil
}

// Patterns of config.go for SE_STORAGE_ID and the dephealth labels.
var (
	storageIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	labelPattern     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

func matches(re *regexp.Regexp) func(string) error {
	return func(v string) error {
		if !re.MatchString(v) {
			return fmt.Errorf("does not match %s", re)
		}
		return nil
	}
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("empty")
	}
	return nil
}

var envFormats = map[string]func(string) error{
	"SE_PORT":                          parsePort,
	"SE_BIND_ADDR":                     parseHost,
	"SE_STORAGE_ID":                    matches(storageIDPattern),
	"SE_DATA_DIR":                      parseAbsPath,
	"SE_WAL_DIR":                       parseAbsPath,
	"SE_MODE":                          oneOf("edit", "rw", "ro", "ar"),
	"SE_MAX_FILE_SIZE":                 parseSize,
	"SE_MAX_CAPACITY":                  parseSize,
	"SE_GC_INTERVAL":                   parseDuration,
	"SE_RECONCILE_INTERVAL":            parseDuration,
	"SE_JWKS_URL":                      parseJWKSURL,
	"SE_JWKS_CA_CERT":                  parseAbsPath,
	"SE_CA_CERT_PATH":                  parseAbsPath,
	"SE_TLS_CERT":                      parseAbsPath,
	"SE_TLS_KEY":                       parseAbsPath,
	"SE_LOG_LEVEL":                     oneOf("debug", "info", "warn", "error"),
	"SE_LOG_FORMAT":                    oneOf("json", "text"),
	"SE_REPLICA_MODE":                  oneOf("standalone", "replicated"),
	"SE_INDEX_REFRESH_INTERVAL":        parseDuration,
	"SE_DEPHEALTH_CHECK_INTERVAL":      parseDuration,
	"SE_DEPHEALTH_NAME":                matches(labelPattern),
	"SE_DEPHEALTH_GROUP":               matches(labelPattern),
	"SE_DEPHEALTH_DEP_NAME":            matches(labelPattern),
	"SE_ELECTION_RETRY_INTERVAL":       parseDuration,
	"SE_SHUTDOWN_TIMEOUT":              parseDuration,
	"SE_ADVERTISE_ADDR":                parseHostPort,
	"SE_JWT_ISSUER":                    nonEmpty,
	"SE_JWT_AUDIENCE":                  nonEmpty,
	"SE_PEER_CA_CERT":                  parseAbsPath,
	"SE_PEER_TLS_INSECURE_SKIP_VERIFY": oneOf("true", "false"),
}

// checkEnvValues: every SE_* entry is a literal value (the SE reads no Secret through env)
// that parses as the binary will parse it. A variable of config.go without a format here
// is reported, so this table keeps up with the binary.
func checkEnvValues(env []corev1.EnvVar, r *report) {
	for _, e := range env {
		if !strings.HasPrefix(e.Name, "SE_") {
			continue
		}
		if e.ValueFrom != nil {
			r.fail("env %s: valueFrom; SE variables are plain values", e.Name)
			continue
		}
		check, ok := envFormats[e.Name]
		if !ok {
			r.fail("env %s: no format known to helmcheck (add it to envFormats)", e.Name)
			continue
		}
		if err := check(e.Value); err != nil {
			r.fail("env %s=%q: %v", e.Name, e.Value, err)
		}
	}
}
