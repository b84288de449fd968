package main

// Configuration of the Storage Element, read once at start from the environment
// (CONTRACT §8).
//
// Invariants:
//   - loadConfig reads variables strictly in the order of configVariables and
//     returns the FIRST problem it finds, so the same environment always yields
//     the same message. A check that involves two variables (SE_MAX_CAPACITY >=
//     SE_MAX_FILE_SIZE, the SE_JWKS_CA_CERT / SE_CA_CERT_PATH alias, the TLS key
//     pair) is reported at the later variable of the two.
//   - Every error is ONE line of the form "SE_NAME: what is wrong[, got "value"]".
//     Echoed values are quoted with strconv.Quote (so control characters and
//     newlines cannot break the line) and truncated. The JWKS URL is never
//     echoed whole: it may carry credentials in its user info or query, so
//     only its scheme or host is shown.
//   - An empty value means "unset" for optional variables and "missing" for
//     required ones. Values are not trimmed: " 8010" is an error, not 8010.
//   - Auth fails closed (CONTRACT §11): a JWKS URL that is not absolute https
//     (plain http only to a loopback host), an unreadable CA bundle, or a
//     bundle without a certificate stops the process instead of silently
//     falling back to weaker trust.
//   - Nothing here creates directories or reads the data directory; main does
//     that after the configuration is known to be well formed.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Config is the validated configuration. Zero values never appear for
// required fields: loadConfig either fills them or fails.
type Config struct {
	Port                   int
	BindAddr               string // "" = all interfaces
	StorageID              string
	DataDir, WALDir        string // cleaned; required
	Mode                   string // seed mode for mode.json: edit|rw|ro|ar
	MaxFileSize            int64
	MaxCapacity            int64 // 0 = not set: main uses FilesystemCapacity(DataDir)
	GCInterval             time.Duration
	ReconcileInterval      time.Duration
	JWKSURL                string
	JWKSCACert             string         // path of the PEM bundle, "" when not set
	JWKSRootCAs            *x509.CertPool // system roots + JWKSCACert
	TLSCert, TLSKey        string         // paths; the pair loaded once at start
	LogLevel               slog.Level
	LogFormat              string // json|text
	ReplicaMode            string // standalone|replicated
	IndexRefreshInterval   time.Duration
	DepHealthCheckInterval time.Duration
	DepHealthName          string
	DepHealthGroup         string
	DepHealthDepName       string
	ElectionRetryInterval  time.Duration
	ShutdownTimeout        time.Duration
	AdvertiseAddr          string // host:port
	JWTIssuer, JWTAudience string // "" = not checked
	PeerCACert             string
	PeerRootCAs            *x509.CertPool // system roots + PeerCACert
	PeerTLSInsecure        bool
}

// Names of the environment variables, in the order they are read.
const (
	envPort                   = "SE_PORT"
	envBindAddr               = "SE_BIND_ADDR"
	envStorageID              = "SE_STORAGE_ID"
	envDataDir                = "SE_DATA_DIR"
	envWALDir                 = "SE_WAL_DIR"
	envMode                   = "SE_MODE"
	envMaxFileSize            = "SE_MAX_FILE_SIZE"
	envMaxCapacity            = "SE_MAX_CAPACITY"
	envGCInterval             = "SE_GC_INTERVAL"
	envReconcileInterval      = "SE_RECONCILE_INTERVAL"
	envJWKSURL                = "SE_JWKS_URL"
	envJWKSCACert             = "SE_JWKS_CA_CERT"
	envCACertPath             = "SE_CA_CERT_PATH" // alias of SE_JWKS_CA_CERT
	envTLSCert                = "SE_TLS_CERT"
	envTLSKey                 = "SE_TLS_KEY"
	envLogLevel               = "SE_LOG_LEVEL"
	envLogFormat              = "SE_LOG_FORMAT"
	envReplicaMode            = "SE_REPLICA_MODE"
	envIndexRefreshInterval   = "SE_INDEX_REFRESH_INTERVAL"
	envDepHealthCheckInterval = "SE_DEPHEALTH_CHECK_INTERVAL"
	envDepHealthName          = "SE_DEPHEALTH_NAME"
	envDepHealthGroup         = "SE_DEPHEALTH_GROUP"
	envDepHealthDepName       = "SE_DEPHEALTH_DEP_NAME"
	envElectionRetryInterval  = "SE_ELECTION_RETRY_INTERVAL"
	envShutdownTimeout        = "SE_SHUTDOWN_TIMEOUT"
	envAdvertiseAddr          = "SE_ADVERTISE_ADDR"
	envJWTIssuer              = "SE_JWT_ISSUER"
	envJWTAudience            = "SE_JWT_AUDIENCE"
	envPeerCACert             = "SE_PEER_CA_CERT"
	envPeerTLSInsecure        = "SE_PEER_TLS_INSECURE_SKIP_VERIFY"
)

// Defaults and limits (CONTRACT §8).
const (
	defaultPort        = 8010
	defaultMaxFileSize = int64(1) << 30 // 1073741824
	maxSizeValue       = int64(1) << 50 // 1 PiB: beyond any single volume we expect
	maxIssuerLen       = 1024           // bytes, for SE_JWT_ISSUER / SE_JWT_AUDIENCE
	maxPEMFileSize     = 16 << 20       // a CA bundle or key pair is far smaller
	maxEchoedValueLen  = 80             // longer values are cut in error messages
)

// configStep loads one or more variables into the Config. A step that checks
// several variables together lists all of them, so configVariables (derived
// from the steps) is exactly the set of names loadConfig reads, in order.
type configStep struct {
	names []string
	load  func(l *configLoader) error
}

// durationSpec is a duration variable with its default and inclusive bounds.
type durationSpec struct {
	name     string
	def, min time.Duration
	max      time.Duration
	field    func(*Config) *time.Duration
}

const day = 24 * time.Hour

// The 1s floor on GC and reconciliation keeps a typo like "1ns" from turning a
// background job into a busy loop; the ceilings catch unit mistakes ("6000h").
var (
	gcIntervalSpec = durationSpec{envGCInterval, time.Hour, time.Second, 30 * day,
		func(c *Config) *time.Duration { return &c.GCInterval }}
	reconcileIntervalSpec = durationSpec{envReconcileInterval, 6 * time.Hour, time.Second, 30 * day,
		func(c *Config) *time.Duration { return &c.ReconcileInterval }}
	indexRefreshSpec = durationSpec{envIndexRefreshInterval, 30 * time.Second, time.Second, time.Hour,
		func(c *Config) *time.Duration { return &c.IndexRefreshInterval }}
	depHealthIntervalSpec = durationSpec{envDepHealthCheckInterval, 15 * time.Second, time.Second, 10 * time.Minute,
		func(c *Config) *time.Duration { return &c.DepHealthCheckInterval }}
	electionRetrySpec = durationSpec{envElectionRetryInterval, 5 * time.Second, 100 * time.Millisecond, 10 * time.Minute,
		func(c *Config) *time.Duration { return &c.ElectionRetryInterval }}
	shutdownTimeoutSpec = durationSpec{envShutdownTimeout, 30 * time.Second, time.Second, time.Hour,
		func(c *Config) *time.Duration { return &c.ShutdownTimeout }}
)

var (
	storageIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	labelPattern     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

var (
	seedModes    = []string{"edit", "rw", "ro", "ar"}
	logFormats   = []string{"json", "text"}
	replicaModes = []string{"standalone", "replicated"}
	logLevels    = []string{"debug", "info", "warn", "error"}
)

// configSteps is the fixed reading order; configVariables is derived from it.
var configSteps = []configStep{
	{[]string{envPort}, loadPort},
	{[]string{envBindAddr}, loadBindAddr},
	{[]string{envStorageID}, loadStorageID},
	{[]string{envDataDir}, func(l *configLoader) error { return l.dir(envDataDir, &l.cfg.DataDir) }},
	{[]string{envWALDir}, func(l *configLoader) error { return l.dir(envWALDir, &l.cfg.WALDir) }},
	{[]string{envMode}, func(l *configLoader) error { return l.enum(envMode, "edit", seedModes, &l.cfg.Mode) }},
	{[]string{envMaxFileSize}, loadMaxFileSize},
	{[]string{envMaxCapacity}, loadMaxCapacity},
	{[]string{envGCInterval}, gcIntervalSpec.load},
	{[]string{envReconcileInterval}, reconcileIntervalSpec.load},
	{[]string{envJWKSURL}, loadJWKSURL},
	{[]string{envJWKSCACert, envCACertPath}, loadJWKSCACert},
	{[]string{envTLSCert, envTLSKey}, loadTLSPair},
	{[]string{envLogLevel}, loadLogLevel},
	{[]string{envLogFormat}, func(l *configLoader) error { return l.enum(envLogFormat, "json", logFormats, &l.cfg.LogFormat) }},
	{[]string{envReplicaMode}, func(l *configLoader) error {
		return l.enum(envReplicaMode, "standalone", replicaModes, &l.cfg.ReplicaMode)
	}},
	{[]string{envIndexRefreshInterval}, indexRefreshSpec.load},
	{[]string{envDepHealthCheckInterval}, depHealthIntervalSpec.load},
	{[]string{envDepHealthName}, func(l *configLoader) error {
		return l.label(envDepHealthName, "storage-element", &l.cfg.DepHealthName)
	}},
	{[]string{envDepHealthGroup}, func(l *configLoader) error {
		return l.label(envDepHealthGroup, "artstore", &l.cfg.DepHealthGroup)
	}},
	{[]string{envDepHealthDepName}, func(l *configLoader) error {
		return l.label(envDepHealthDepName, "admin-jwks", &l.cfg.DepHealthDepName)
	}},
	{[]string{envElectionRetryInterval}, electionRetrySpec.load},
	{[]string{envShutdownTimeout}, shutdownTimeoutSpec.load},
	{[]string{envAdvertiseAddr}, loadAdvertiseAddr},
	{[]string{envJWTIssuer}, func(l *configLoader) error { return l.freeString(envJWTIssuer, &l.cfg.JWTIssuer) }},
	{[]string{envJWTAudience}, func(l *configLoader) error { return l.freeString(envJWTAudience, &l.cfg.JWTAudience) }},
	{[]string{envPeerCACert}, loadPeerCACert},
	{[]string{envPeerTLSInsecure}, loadPeerTLSInsecure},
}

// configVariables lists every variable loadConfig reads, in a stable order
// (used by packaging checks and the README table).
var configVariables = stepVariableNames(configSteps)

func stepVariableNames(steps []configStep) []string {
	var names []string
	for _, s := range steps {
		names = append(names, s.names...)
	}
	return names
}

// configError is the one-line error loadConfig returns. Variable is always a
// member of configVariables and always the start of Error(). Err, when set,
// is the underlying cause (already part of Problem's text) for errors.Is/As.
type configError struct {
	Variable string
	Problem  string
	Err      error
}

func (e *configError) Error() string { return e.Variable + ": " + e.Problem }

func (e *configError) Unwrap() error { return e.Err }

// badValue builds a configError; a %w verb in format sets Err.
func badValue(name, format string, args ...any) error {
	wrapped := fmt.Errorf(format, args...)
	return &configError{Variable: name, Problem: wrapped.Error(), Err: errors.Unwrap(wrapped)}
}

// echo renders a user-supplied value for an error message: quoted (one line,
// control characters escaped) and cut to a bounded length.
func echo(value string) string {
	if len(value) <= maxEchoedValueLen {
		return strconv.Quote(value)
	}
	return strconv.Quote(value[:maxEchoedValueLen]) + "..."
}

// loadConfig reads the variables through getenv (os.LookupEnv in production,
// a map in tests) and returns the validated Config or the first problem.
func loadConfig(getenv func(string) (string, bool)) (*Config, error) {
	l := &configLoader{getenv: getenv, cfg: &Config{}}
	for _, step := range configSteps {
		if err := step.load(l); err != nil {
			return nil, err
		}
	}
	return l.cfg, nil
}

// configLoader carries the half-built Config between steps; later steps may
// rely on fields filled by earlier ones (e.g. AdvertiseAddr on Port).
type configLoader struct {
	getenv func(string) (string, bool)
	cfg    *Config
}

// value returns the variable's value; "" means unset.
func (l *configLoader) value(name string) string {
	v, ok := l.getenv(name)
	if !ok {
		return ""
	}
	return v
}

func (l *configLoader) required(name string) (string, error) {
	v := l.value(name)
	if v == "" {
		return "", badValue(name, "required but not set")
	}
	return v, nil
}

func (l *configLoader) enum(name, def string, allowed []string, dst *string) error {
	v := l.value(name)
	if v == "" {
		*dst = def
		return nil
	}
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return badValue(name, "must be one of %s, got %s", strings.Join(allowed, ", "), echo(v))
}

func (l *configLoader) label(name, def string, dst *string) error {
	v := l.value(name)
	if v == "" {
		*dst = def
		return nil
	}
	if !labelPattern.MatchString(v) {
		return badValue(name, "must match ^[a-z][a-z0-9-]*$ and be 1..63 characters, got %s", echo(v))
	}
	*dst = v
	return nil
}

func (l *configLoader) freeString(name string, dst *string) error {
	v := l.value(name)
	if len(v) > maxIssuerLen {
		return badValue(name, "must be at most %d bytes, got %d bytes", maxIssuerLen, len(v))
	}
	// Token claims are JSON strings, hence valid UTF-8: an invalid value could
	// never match and would silently reject every token.
	if !utf8.ValidString(v) {
		return badValue(name, "must be valid UTF-8, got %s", echo(v))
	}
	*dst = v
	return nil
}

func (l *configLoader) dir(name string, dst *string) error {
	v, err := l.required(name)
	if err != nil {
		return err
	}
	if strings.IndexByte(v, 0) >= 0 {
		return badValue(name, "must be a path without NUL bytes, got %s", echo(v))
	}
	*dst = filepath.Clean(v)
	return nil
}

func (s durationSpec) load(l *configLoader) error {
	dst := s.field(l.cfg)
	v := l.value(s.name)
	if v == "" {
		*dst = s.def
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return badValue(s.name, "must be a Go duration (e.g. %s) in %s..%s, got %s",
			shortDuration(s.def), shortDuration(s.min), shortDuration(s.max), echo(v))
	}
	if d < s.min || d > s.max {
		return badValue(s.name, "must be in %s..%s, got %s",
			shortDuration(s.min), shortDuration(s.max), echo(v))
	}
	*dst = d
	return nil
}

// shortDuration prints 720h instead of 720h0m0s and 10m instead of 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "h0m0s") {
		return strings.TrimSuffix(s, "0m0s")
	}
	if strings.HasSuffix(s, "m0s") {
		return strings.TrimSuffix(s, "0s")
	}
	return s
}

// parseDecimal accepts only ASCII digits without sign or leading zeros: no
// "+1", "1e9", "0x10", "1GiB". Strict on purpose, so a size or port means
// exactly what an operator reads.
func parseDecimal(v string, limit int64) (int64, bool) {
	if v == "" || len(v) > 19 || (len(v) > 1 && v[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > limit {
		return 0, false
	}
	return n, true
}

func loadPort(l *configLoader) error {
	v := l.value(envPort)
	if v == "" {
		l.cfg.Port = defaultPort
		return nil
	}
	n, ok := parsePort(v)
	if !ok {
		return badValue(envPort, "must be an integer in 1..65535, got %s", echo(v))
	}
	l.cfg.Port = n
	return nil
}

func parsePort(v string) (int, bool) {
	n, ok := parseDecimal(v, 65535)
	if !ok || n < 1 {
		return 0, false
	}
	return int(n), true
}

func loadBindAddr(l *configLoader) error {
	v := l.value(envBindAddr)
	if v == "" {
		return nil
	}
	if !isIPOrHostname(v) {
		return badValue(envBindAddr, "must be empty, an IP address or a hostname (no port, no brackets), got %s", echo(v))
	}
	l.cfg.BindAddr = v
	return nil
}

// isIPOrHostname accepts an IP address (IPv6 without brackets, optional zone)
// or an RFC 1123 hostname. A dotted name whose last label is all digits is
// rejected: "256.1.1.1" is a mistyped address, not a name.
func isIPOrHostname(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "" || len(host) > 253 {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	for _, label := range labels {
		if !isHostnameLabel(label) {
			return false
		}
	}
	return !isAllDigits(labels[len(labels)-1])
}

func isHostnameLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func loadStorageID(l *configLoader) error {
	v, err := l.required(envStorageID)
	if err != nil {
		return err
	}
	if !storageIDPattern.MatchString(v) {
		return badValue(envStorageID, "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$, got %s", echo(v))
	}
	l.cfg.StorageID = v
	return nil
}

func loadMaxFileSize(l *configLoader) error {
	v := l.value(envMaxFileSize)
	if v == "" {
		l.cfg.MaxFileSize = defaultMaxFileSize
		return nil
	}
	n, err := parseSize(envMaxFileSize, v)
	if err != nil {
		return err
	}
	l.cfg.MaxFileSize = n
	return nil
}

func loadMaxCapacity(l *configLoader) error {
	v := l.value(envMaxCapacity)
	if v == "" {
		return nil // 0: main measures the filesystem
	}
	n, err := parseSize(envMaxCapacity, v)
	if err != nil {
		return err
	}
	if n < l.cfg.MaxFileSize {
		return badValue(envMaxCapacity, "must be >= %s (%d), got %s", envMaxFileSize, l.cfg.MaxFileSize, echo(v))
	}
	l.cfg.MaxCapacity = n
	return nil
}

func parseSize(name, v string) (int64, error) {
	n, ok := parseDecimal(v, maxSizeValue)
	if !ok || n < 1 {
		return 0, badValue(name, "must be a whole number of bytes in 1..%d (digits only, no unit), got %s", maxSizeValue, echo(v))
	}
	return n, nil
}

// loadJWKSURL enforces CONTRACT §11: an absolute https URL, or plain http only
// to a loopback host (a sidecar or a test). The value is never echoed.
func loadJWKSURL(l *configLoader) error {
	v, err := l.required(envJWKSURL)
	if err != nil {
		return err
	}
	if err := checkJWKSURL(v); err != nil {
		return badValue(envJWKSURL, "%s", err.Error())
	}
	l.cfg.JWKSURL = v
	return nil
}

func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	if !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return errors.New("must be an absolute URL like https://host/path")
	}
	if u.User != nil {
		return errors.New("must not contain user info (credentials)")
	}
	if strings.Contains(raw, "#") {
		return errors.New("must not contain a fragment")
	}
	host := u.Hostname()
	if !isIPOrHostname(host) {
		return fmt.Errorf("host must be an IP address or a hostname, got %s", echo(host))
	}
	if p := u.Port(); p != "" {
		if _, ok := parsePort(p); !ok {
			return fmt.Errorf("port must be in 1..65535, got %s", echo(p))
		}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(host) {
			return nil
		}
		return fmt.Errorf("plain http is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), got host %s", echo(host))
	default:
		return fmt.Errorf("scheme must be https, got %s", echo(u.Scheme))
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// loadJWKSCACert resolves SE_JWKS_CA_CERT and its alias SE_CA_CERT_PATH. Both
// set to different paths is ambiguous, so it is refused rather than guessed.
func loadJWKSCACert(l *configLoader) error {
	primary := l.value(envJWKSCACert)
	alias := l.value(envCACertPath)
	if primary != "" && alias != "" && primary != alias {
		return badValue(envJWKSCACert, "conflicts with its alias %s (both set, to different paths); set only one", envCACertPath)
	}
	name, path := envJWKSCACert, primary
	if path == "" {
		name, path = envCACertPath, alias
	}
	pool, err := rootPool(name, path)
	if err != nil {
		return err
	}
	l.cfg.JWKSCACert = path
	l.cfg.JWKSRootCAs = pool
	return nil
}

func loadPeerCACert(l *configLoader) error {
	path := l.value(envPeerCACert)
	pool, err := rootPool(envPeerCACert, path)
	if err != nil {
		return err
	}
	l.cfg.PeerCACert = path
	l.cfg.PeerRootCAs = pool
	return nil
}

// rootPool returns the system roots plus the certificates of the PEM bundle at
// path (when path is set). It fails closed: an unreadable bundle, a bundle
// without any certificate, or a CERTIFICATE block that does not parse is an
// error, never a silent fallback to the system roots alone.
func rootPool(name, path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		// No system roots: trust only the configured bundle (stricter, not weaker).
		pool = x509.NewCertPool()
	}
	if path == "" {
		return pool, nil
	}
	data, err := readSmallFile(path)
	if err != nil {
		return nil, badValue(name, "cannot read CA bundle: %w", err)
	}
	certs, err := parsePEMCertificates(data)
	if err != nil {
		return nil, badValue(name, "CA bundle %s: %w", echo(path), err)
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parsePEMCertificates returns every CERTIFICATE block of data. Other block
// types are skipped; a CERTIFICATE block that does not parse is an error
// (x509.CertPool.AppendCertsFromPEM would skip it silently).
func parsePEMCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for index := 1; ; index++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is not a valid certificate: %w", index, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("contains no PEM certificate")
	}
	return certs, nil
}

// readSmallFile reads a regular file of at most maxPEMFileSize bytes. The
// regular-file check keeps a misconfigured path (a FIFO, /dev/zero) from
// hanging or exhausting memory at start.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", echo(path))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPEMFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", echo(path), maxPEMFileSize)
	}
	return data, nil
}

// loadTLSPair checks the serving certificate and key load as a pair, naming
// the variable at fault: the certificate file (unreadable, no certificate) or
// the key file (unreadable, unparsable, not matching the certificate). The
// server reloads the files later on change; this only proves the start state.
// Errors never include file contents, only paths and parser messages.
func loadTLSPair(l *configLoader) error {
	certPath, err := l.required(envTLSCert)
	if err != nil {
		return err
	}
	keyPath := l.value(envTLSKey)
	certPEM, err := readSmallFile(certPath)
	if err != nil {
		return badValue(envTLSCert, "cannot read certificate: %w", err)
	}
	if _, err := parsePEMCertificates(certPEM); err != nil {
		return badValue(envTLSCert, "certificate file %s: %w", echo(certPath), err)
	}
	if keyPath == "" {
		return badValue(envTLSKey, "required but not set")
	}
	keyPEM, err := readSmallFile(keyPath)
	if err != nil {
		return badValue(envTLSKey, "cannot read private key: %w", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return badValue(envTLSKey, "does not load as a key pair with %s: %w", envTLSCert, err)
	}
	l.cfg.TLSCert, l.cfg.TLSKey = certPath, keyPath
	return nil
}

func loadLogLevel(l *configLoader) error {
	var name string
	if err := l.enum(envLogLevel, "info", logLevels, &name); err != nil {
		return err
	}
	switch name {
	case "debug":
		l.cfg.LogLevel = slog.LevelDebug
	case "warn":
		l.cfg.LogLevel = slog.LevelWarn
	case "error":
		l.cfg.LogLevel = slog.LevelError
	default:
		l.cfg.LogLevel = slog.LevelInfo
	}
	return nil
}

// loadAdvertiseAddr needs Port, which is read first.
func loadAdvertiseAddr(l *configLoader) error {
	v := l.value(envAdvertiseAddr)
	if v == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return badValue(envAdvertiseAddr, "not set and the hostname is unknown; set it to host:port")
		}
		l.cfg.AdvertiseAddr = net.JoinHostPort(host, strconv.Itoa(l.cfg.Port))
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || !isIPOrHostname(host) {
		return badValue(envAdvertiseAddr, "must be host:port (IPv6 in brackets), got %s", echo(v))
	}
	if _, ok := parsePort(port); !ok {
		return badValue(envAdvertiseAddr, "port must be an integer in 1..65535, got %s", echo(v))
	}
	l.cfg.AdvertiseAddr = v
	return nil
}

func loadPeerTLSInsecure(l *configLoader) error {
	switch v := l.value(envPeerTLSInsecure); v {
	case "", "false":
		l.cfg.PeerTLSInsecure = false
	case "true":
		l.cfg.PeerTLSInsecure = true
	default:
		return badValue(envPeerTLSInsecure, "must be true or false, got %s", echo(v))
	}
	return nil
}

// Logger returns a logger writing to w in LogFormat at LogLevel.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// ListenAddr is the address the HTTPS server listens on.
func (c *Config) ListenAddr() string {
	return net.JoinHostPort(c.BindAddr, strconv.Itoa(c.Port))
}

// FilesystemCapacity returns the total size in bytes of the filesystem holding
// dir (Blocks*Bsize of statfs; Linux reports f_blocks in f_bsize units). The
// product saturates at MaxInt64 rather than wrapping.
func FilesystemCapacity(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Bsize <= 0 {
		return 0, fmt.Errorf("statfs %s: block size %d", dir, st.Bsize)
	}
	blocks, bsize := uint64(st.Blocks), uint64(st.Bsize)
	if blocks > math.MaxInt64/bsize {
		return math.MaxInt64, nil
	}
	return int64(blocks * bsize), nil
}
