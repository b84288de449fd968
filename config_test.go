package main

// Tests of loadConfig (CONTRACT §8, §11): defaults, accepted values, and for
// every kind of bad value an error that starts with the variable's name.
// Certificates are generated per test; nothing touches the network.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPKI is a set of PEM files in a temp dir: a self-signed CA-capable
// certificate with its key, a second unrelated key, and junk files.
type testPKI struct {
	cert     *x509.Certificate
	certPath string // self-signed certificate, also usable as a CA bundle
	keyPath  string // key of certPath
	otherKey string // a key that does not match certPath
	notPEM   string // a file with no PEM in it
	keyOnly  string // PEM without any CERTIFICATE block
	badCert  string // a CERTIFICATE block whose bytes are garbage
}

func newTestPKI(tb testing.TB) *testPKI {
	tb.Helper()
	dir := tb.TempDir()
	key := newTestKey(tb)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "se-test"},
		DNSNames:              []string{"se-test.local"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	p := &testPKI{cert: cert}
	p.certPath = writeTestFile(tb, dir, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	p.keyPath = writeTestFile(tb, dir, "key.pem", encodeTestKey(tb, key))
	p.otherKey = writeTestFile(tb, dir, "other-key.pem", encodeTestKey(tb, newTestKey(tb)))
	p.notPEM = writeTestFile(tb, dir, "junk.txt", []byte("this is not PEM\n"))
	p.keyOnly = p.keyPath
	p.badCert = writeTestFile(tb, dir, "bad-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}))
	return p
}

func newTestKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func encodeTestKey(tb testing.TB, key *ecdsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeTestFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// baseEnv holds only the required variables, set to valid values.
func baseEnv(p *testPKI) map[string]string {
	return map[string]string{
		envStorageID: "se-test-01",
		envDataDir:   "/srv/se/data",
		envWALDir:    "/srv/se/wal",
		envJWKSURL:   "https://admin.example.com/.well-known/jwks.json",
		envTLSCert:   p.certPath,
		envTLSKey:    p.keyPath,
	}
}

func mapGetenv(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

func loadWith(base map[string]string, name, value string, set bool) (*Config, error) {
	env := make(map[string]string, len(base)+1)
	for k, v := range base {
		env[k] = v
	}
	if set {
		env[name] = value
	} else {
		delete(env, name)
	}
	return loadConfig(mapGetenv(env))
}

// assertConfigError checks err is one line starting with "name: " and carries
// name as its Variable.
func assertConfigError(t *testing.T, err error, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error naming %s, got nil", name)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, name+": ") {
		t.Fatalf("error does not start with %q: %q", name+": ", msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error is not one line: %q", msg)
	}
	var ce *configError
	if !errors.As(err, &ce) || ce.Variable != name {
		t.Fatalf("error is not a configError for %s: %#v", name, err)
	}
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Skipf("no hostname: %v", err)
	}
	return h
}

type goodValue struct {
	value string
	want  any
}

type variableCase struct {
	name     string
	get      func(*Config) any
	required bool // unset must fail with "required"
	def      any  // value when unset (ignored when required)
	good     []goodValue
	bad      []string
}

func variableCases(t *testing.T, p *testPKI) []variableCase {
	hostname := mustHostname(t)
	long63 := strings.Repeat("a", 63)
	dirName := filepath.Dir(p.certPath)
	durationBad := func(extra ...string) []string {
		return append([]string{"0", "-1s", "5", "abc", "1 h", "1h "}, extra...)
	}
	str := func(f func(*Config) string) func(*Config) any { return func(c *Config) any { return f(c) } }
	dur := func(f func(*Config) time.Duration) func(*Config) any { return func(c *Config) any { return f(c) } }
	return []variableCase{
		{name: envPort, get: func(c *Config) any { return c.Port }, def: 8010,
			good: []goodValue{{"1", 1}, {"8443", 8443}, {"65535", 65535}},
			bad:  []string{"http", "0", "65536", "-1", "+80", "080", " 8010", "1e3", "99999999999999999999999"}},
		{name: envBindAddr, get: str(func(c *Config) string { return c.BindAddr }), def: "",
			good: []goodValue{{"127.0.0.1", "127.0.0.1"}, {"::1", "::1"}, {"0.0.0.0", "0.0.0.0"},
				{"se-01.example.com", "se-01.example.com"}, {"localhost", "localhost"}},
			bad: []string{"[::1]", "0.0.0.0:80", "bad_host", "256.1.1.1", "-a", "a..b", "a b", strings.Repeat("a", 64)}},
		{name: envStorageID, get: str(func(c *Config) string { return c.StorageID }), required: true,
			good: []goodValue{{"se-moscow-01", "se-moscow-01"}, {"A", "A"}, {"0a.b_c-d", "0a.b_c-d"}, {long63, long63}},
			bad:  []string{"-x", ".x", "_x", "se moscow", "se/01", long63 + "a", "sé", "se\n01"}},
		{name: envDataDir, get: str(func(c *Config) string { return c.DataDir }), required: true,
			good: []goodValue{{"/data/../data/x/", "/data/x"}, {"rel//dir/", "rel/dir"}, {"/srv/se", "/srv/se"}},
			bad:  []string{"/a\x00b"}},
		{name: envWALDir, get: str(func(c *Config) string { return c.WALDir }), required: true,
			good: []goodValue{{"/wal/./x//", "/wal/x"}, {"/srv/wal", "/srv/wal"}},
			bad:  []string{"\x00"}},
		{name: envMode, get: str(func(c *Config) string { return c.Mode }), def: "edit",
			good: []goodValue{{"edit", "edit"}, {"rw", "rw"}, {"ro", "ro"}, {"ar", "ar"}},
			bad:  []string{"EDIT", "readonly", "ro ", "RW"}},
		{name: envMaxFileSize, get: func(c *Config) any { return c.MaxFileSize }, def: int64(1073741824),
			good: []goodValue{{"1", int64(1)}, {"1048576", int64(1048576)}, {"1125899906842624", int64(1) << 50}},
			bad:  []string{"0", "-1", "1GiB", "1e9", "1125899906842625", "0x10", "+5", "01", "1.5", "abc", "18446744073709551616"}},
		{name: envMaxCapacity, get: func(c *Config) any { return c.MaxCapacity }, def: int64(0),
			good: []goodValue{{"1073741824", int64(1073741824)}, {"1125899906842624", int64(1) << 50}},
			bad:  []string{"1073741823", "0", "abc", "-5", "10G", "1125899906842625"}},
		{name: envGCInterval, get: dur(func(c *Config) time.Duration { return c.GCInterval }), def: time.Hour,
			good: []goodValue{{"1s", time.Second}, {"90m", 90 * time.Minute}, {"720h", 720 * time.Hour}},
			bad:  durationBad("721h", "999ms", "1ns")},
		{name: envReconcileInterval, get: dur(func(c *Config) time.Duration { return c.ReconcileInterval }), def: 6 * time.Hour,
			good: []goodValue{{"1s", time.Second}, {"24h", 24 * time.Hour}, {"720h", 720 * time.Hour}},
			bad:  durationBad("720h1s", "999ms")},
		{name: envJWKSURL, get: str(func(c *Config) string { return c.JWKSURL }), required: true,
			good: []goodValue{{"https://admin.example.com/jwks", "https://admin.example.com/jwks"},
				{"http://127.0.0.1:9/jwks", "http://127.0.0.1:9/jwks"}},
			bad: []string{"http://example.com/x", "ftp://example.com/x", "/jwks", "admin.example.com/jwks",
				"https://u:p@admin.example.com/jwks", "https://admin.example.com/jwks#k", "https://", "https:///x",
				"https://admin.example.com:0/x", "https://admin.example.com:99999/x", "https://bad_host/x", "%zz"}},
		{name: envJWKSCACert, get: str(func(c *Config) string { return c.JWKSCACert }), def: "",
			good: []goodValue{{p.certPath, p.certPath}},
			bad:  []string{"/nonexistent/ca.pem", p.notPEM, p.keyOnly, p.badCert, dirName}},
		{name: envCACertPath, get: str(func(c *Config) string { return c.JWKSCACert }), def: "",
			good: []goodValue{{p.certPath, p.certPath}},
			bad:  []string{"/nonexistent/ca.pem", p.notPEM, p.keyOnly, p.badCert}},
		{name: envTLSCert, get: str(func(c *Config) string { return c.TLSCert }), required: true,
			good: []goodValue{{p.certPath, p.certPath}},
			bad:  []string{"/nonexistent/cert.pem", p.notPEM, p.keyOnly, p.badCert, dirName}},
		{name: envTLSKey, get: str(func(c *Config) string { return c.TLSKey }), required: true,
			good: []goodValue{{p.keyPath, p.keyPath}},
			bad:  []string{"/nonexistent/key.pem", p.otherKey, p.certPath, p.notPEM, dirName}},
		{name: envLogLevel, get: func(c *Config) any { return c.LogLevel }, def: slog.LevelInfo,
			good: []goodValue{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}},
			bad:  []string{"INFO", "trace", "warning", "-4"}},
		{name: envLogFormat, get: str(func(c *Config) string { return c.LogFormat }), def: "json",
			good: []goodValue{{"json", "json"}, {"text", "text"}},
			bad:  []string{"JSON", "logfmt"}},
		{name: envReplicaMode, get: str(func(c *Config) string { return c.ReplicaMode }), def: "standalone",
			good: []goodValue{{"standalone", "standalone"}, {"replicated", "replicated"}},
			bad:  []string{"Replicated", "cluster"}},
		{name: envIndexRefreshInterval, get: dur(func(c *Config) time.Duration { return c.IndexRefreshInterval }), def: 30 * time.Second,
			good: []goodValue{{"1s", time.Second}, {"1h", time.Hour}},
			bad:  durationBad("999ms", "61m")},
		{name: envDepHealthCheckInterval, get: dur(func(c *Config) time.Duration { return c.DepHealthCheckInterval }), def: 15 * time.Second,
			good: []goodValue{{"1s", time.Second}, {"10m", 10 * time.Minute}},
			bad:  durationBad("500ms", "10m1s")},
		{name: envDepHealthName, get: str(func(c *Config) string { return c.DepHealthName }), def: "storage-element",
			good: []goodValue{{"a", "a"}, {"se-1", "se-1"}, {long63, long63}},
			bad:  []string{"1a", "A", "a_b", "a.b", "-a", long63 + "a"}},
		{name: envDepHealthGroup, get: str(func(c *Config) string { return c.DepHealthGroup }), def: "artstore",
			good: []goodValue{{"prod-eu", "prod-eu"}},
			bad:  []string{"Prod", "prod eu"}},
		{name: envDepHealthDepName, get: str(func(c *Config) string { return c.DepHealthDepName }), def: "admin-jwks",
			good: []goodValue{{"idp", "idp"}},
			bad:  []string{"idp/jwks", "ÿ"}},
		{name: envElectionRetryInterval, get: dur(func(c *Config) time.Duration { return c.ElectionRetryInterval }), def: 5 * time.Second,
			good: []goodValue{{"100ms", 100 * time.Millisecond}, {"10m", 10 * time.Minute}},
			bad:  durationBad("99ms", "11m")},
		{name: envShutdownTimeout, get: dur(func(c *Config) time.Duration { return c.ShutdownTimeout }), def: 30 * time.Second,
			good: []goodValue{{"1s", time.Second}, {"1h", time.Hour}},
			bad:  durationBad("999ms", "2h")},
		{name: envAdvertiseAddr, get: str(func(c *Config) string { return c.AdvertiseAddr }),
			def: net.JoinHostPort(hostname, "8010"),
			good: []goodValue{{"se-01:8010", "se-01:8010"}, {"10.0.0.1:9000", "10.0.0.1:9000"},
				{"[::1]:8010", "[::1]:8010"}, {"se-01.dc1.example.com:443", "se-01.dc1.example.com:443"}},
			bad: []string{"se-01", "se-01:0", "se-01:http", ":8010", "::1:8010", "se_01:80", "se-01:65536", "https://se-01:80"}},
		{name: envJWTIssuer, get: str(func(c *Config) string { return c.JWTIssuer }), def: "",
			good: []goodValue{{"https://admin.example.com", "https://admin.example.com"},
				{strings.Repeat("i", 1024), strings.Repeat("i", 1024)}},
			bad: []string{strings.Repeat("i", 1025), "\xff"}},
		{name: envJWTAudience, get: str(func(c *Config) string { return c.JWTAudience }), def: "",
			good: []goodValue{{"artstore storage", "artstore storage"}},
			bad:  []string{strings.Repeat("a", 1025), "a\xc3"}},
		{name: envPeerCACert, get: str(func(c *Config) string { return c.PeerCACert }), def: "",
			good: []goodValue{{p.certPath, p.certPath}},
			bad:  []string{"/nonexistent/ca.pem", p.notPEM, p.keyOnly, p.badCert}},
		{name: envPeerTLSInsecure, get: func(c *Config) any { return c.PeerTLSInsecure }, def: false,
			good: []goodValue{{"true", true}, {"false", false}},
			bad:  []string{"1", "TRUE", "yes", "True"}},
	}
}

func TestLoadConfigEachVariable(t *testing.T) {
	p := newTestPKI(t)
	base := baseEnv(p)
	cases := variableCases(t, p)

	covered := map[string]bool{}
	for _, vc := range cases {
		covered[vc.name] = true
	}
	for _, name := range configVariables {
		if !covered[name] {
			t.Errorf("no test row for %s", name)
		}
	}

	for _, vc := range cases {
		t.Run(vc.name, func(t *testing.T) {
			for _, set := range []bool{false, true} { // unset, then set to ""
				cfg, err := loadWith(base, vc.name, "", set)
				if vc.required {
					assertConfigError(t, err, vc.name)
					if !strings.Contains(err.Error(), "required") {
						t.Errorf("missing %s: %q does not say required", vc.name, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("default: %v", err)
				}
				if got := vc.get(cfg); !reflect.DeepEqual(got, vc.def) {
					t.Errorf("default = %#v, want %#v", got, vc.def)
				}
			}
			for _, g := range vc.good {
				cfg, err := loadWith(base, vc.name, g.value, true)
				if err != nil {
					t.Errorf("%q: unexpected error %v", g.value, err)
					continue
				}
				if got := vc.get(cfg); !reflect.DeepEqual(got, g.want) {
					t.Errorf("%q: got %#v, want %#v", g.value, got, g.want)
				}
			}
			for _, b := range vc.bad {
				_, err := loadWith(base, vc.name, b, true)
				assertConfigError(t, err, vc.name)
			}
		})
	}
}

func TestLoadConfigPortErrorMessage(t *testing.T) {
	p := newTestPKI(t)
	_, err := loadWith(baseEnv(p), envPort, "http", true)
	want := `SE_PORT: must be an integer in 1..65535, got "http"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestLoadConfigEnumErrorsListAllowedValues(t *testing.T) {
	p := newTestPKI(t)
	for name, allowed := range map[string][]string{
		envMode: seedModes, envLogLevel: logLevels, envLogFormat: logFormats, envReplicaMode: replicaModes,
	} {
		_, err := loadWith(baseEnv(p), name, "bogus", true)
		assertConfigError(t, err, name)
		for _, a := range allowed {
			if !strings.Contains(err.Error(), a) {
				t.Errorf("%s error %q does not list %q", name, err, a)
			}
		}
	}
}

// A configuration with every variable set to a non-default value.
func TestLoadConfigFullValid(t *testing.T) {
	p := newTestPKI(t)
	env := map[string]string{
		envPort:                   "9443",
		envBindAddr:               "10.1.2.3",
		envStorageID:              "se-moscow-01",
		envDataDir:                "/srv/se/data/",
		envWALDir:                 "/srv/se/wal/../wal2",
		envMode:                   "rw",
		envMaxFileSize:            "2048",
		envMaxCapacity:            "4096",
		envGCInterval:             "2h",
		envReconcileInterval:      "12h",
		envJWKSURL:                "https://admin.example.com:8443/jwks?v=1",
		envJWKSCACert:             p.certPath,
		envCACertPath:             p.certPath, // same path as the primary: allowed
		envTLSCert:                p.certPath,
		envTLSKey:                 p.keyPath,
		envLogLevel:               "debug",
		envLogFormat:              "text",
		envReplicaMode:            "replicated",
		envIndexRefreshInterval:   "10s",
		envDepHealthCheckInterval: "20s",
		envDepHealthName:          "se",
		envDepHealthGroup:         "prod",
		envDepHealthDepName:       "idp",
		envElectionRetryInterval:  "2s",
		envShutdownTimeout:        "45s",
		envAdvertiseAddr:          "se-01.dc1:9443",
		envJWTIssuer:              "https://admin.example.com",
		envJWTAudience:            "artstore",
		envPeerCACert:             p.certPath,
		envPeerTLSInsecure:        "true",
	}
	for _, name := range configVariables {
		if _, ok := env[name]; !ok {
			t.Fatalf("full config test does not set %s", name)
		}
	}
	cfg, err := loadConfig(mapGetenv(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JWKSRootCAs == nil || cfg.PeerRootCAs == nil {
		t.Fatal("root pools not set")
	}
	got := *cfg
	got.JWKSRootCAs, got.PeerRootCAs = nil, nil
	want := Config{
		Port: 9443, BindAddr: "10.1.2.3", StorageID: "se-moscow-01",
		DataDir: "/srv/se/data", WALDir: "/srv/se/wal2", Mode: "rw",
		MaxFileSize: 2048, MaxCapacity: 4096,
		GCInterval: 2 * time.Hour, ReconcileInterval: 12 * time.Hour,
		JWKSURL: "https://admin.example.com:8443/jwks?v=1", JWKSCACert: p.certPath,
		TLSCert: p.certPath, TLSKey: p.keyPath,
		LogLevel: slog.LevelDebug, LogFormat: "text", ReplicaMode: "replicated",
		IndexRefreshInterval: 10 * time.Second, DepHealthCheckInterval: 20 * time.Second,
		DepHealthName: "se", DepHealthGroup: "prod", DepHealthDepName: "idp",
		ElectionRetryInterval: 2 * time.Second, ShutdownTimeout: 45 * time.Second,
		AdvertiseAddr: "se-01.dc1:9443", JWTIssuer: "https://admin.example.com", JWTAudience: "artstore",
		PeerCACert: p.certPath, PeerTLSInsecure: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if cfg.ListenAddr() != "10.1.2.3:9443" {
		t.Errorf("ListenAddr = %q", cfg.ListenAddr())
	}
}

// The defaults of a minimal configuration, all at once (§8 table).
func TestLoadConfigDefaults(t *testing.T) {
	p := newTestPKI(t)
	cfg, err := loadConfig(mapGetenv(baseEnv(p)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8010 || cfg.Mode != "edit" || cfg.MaxFileSize != 1073741824 || cfg.MaxCapacity != 0 ||
		cfg.GCInterval != time.Hour || cfg.ReconcileInterval != 6*time.Hour || cfg.LogLevel != slog.LevelInfo ||
		cfg.LogFormat != "json" || cfg.ReplicaMode != "standalone" || cfg.IndexRefreshInterval != 30*time.Second ||
		cfg.DepHealthCheckInterval != 15*time.Second || cfg.DepHealthName != "storage-element" ||
		cfg.DepHealthGroup != "artstore" || cfg.DepHealthDepName != "admin-jwks" ||
		cfg.ElectionRetryInterval != 5*time.Second || cfg.ShutdownTimeout != 30*time.Second ||
		cfg.PeerTLSInsecure || cfg.JWTIssuer != "" || cfg.JWTAudience != "" || cfg.BindAddr != "" {
		t.Fatalf("unexpected defaults: %+v", *cfg)
	}
	if cfg.JWKSRootCAs == nil || cfg.PeerRootCAs == nil {
		t.Fatal("root pools must be the system roots when no CA file is set")
	}
	if cfg.ListenAddr() != ":8010" {
		t.Errorf("ListenAddr = %q, want :8010", cfg.ListenAddr())
	}
}

func TestLoadConfigMissingRequired(t *testing.T) {
	p := newTestPKI(t)
	required := []string{envStorageID, envDataDir, envWALDir, envJWKSURL, envTLSCert, envTLSKey}
	for _, name := range required {
		for _, set := range []bool{false, true} {
			_, err := loadWith(baseEnv(p), name, "", set)
			assertConfigError(t, err, name)
			if err.Error() != name+": required but not set" {
				t.Errorf("got %q", err)
			}
		}
	}
	// With nothing set, the first required variable in order is named.
	_, err := loadConfig(mapGetenv(map[string]string{}))
	assertConfigError(t, err, envStorageID)
}

// The first bad variable in configVariables order wins, whatever else is bad.
func TestLoadConfigFirstErrorInOrder(t *testing.T) {
	p := newTestPKI(t)
	env := baseEnv(p)
	env[envShutdownTimeout] = "forever"
	env[envLogFormat] = "xml"
	env[envMaxFileSize] = "big"
	_, err := loadConfig(mapGetenv(env))
	assertConfigError(t, err, envMaxFileSize)

	delete(env, envStorageID)
	env[envPort] = "0"
	_, err = loadConfig(mapGetenv(env))
	assertConfigError(t, err, envPort)
}

func TestLoadConfigReadsVariablesInListedOrder(t *testing.T) {
	p := newTestPKI(t)
	env := baseEnv(p)
	var read []string
	_, err := loadConfig(func(name string) (string, bool) {
		read = append(read, name)
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read, configVariables) {
		t.Fatalf("read order %v\nwant       %v", read, configVariables)
	}
}

// configVariables names every variable of CONTRACT §8 (plus the documented
// alias and the peer skip-verify opt-in), each once.
func TestConfigVariablesCoverContract(t *testing.T) {
	contract := []string{
		"SE_PORT", "SE_STORAGE_ID", "SE_DATA_DIR", "SE_WAL_DIR", "SE_MODE", "SE_MAX_FILE_SIZE",
		"SE_MAX_CAPACITY", "SE_GC_INTERVAL", "SE_RECONCILE_INTERVAL", "SE_JWKS_URL", "SE_JWKS_CA_CERT",
		"SE_CA_CERT_PATH", "SE_TLS_CERT", "SE_TLS_KEY", "SE_LOG_LEVEL", "SE_LOG_FORMAT", "SE_REPLICA_MODE",
		"SE_INDEX_REFRESH_INTERVAL", "SE_DEPHEALTH_CHECK_INTERVAL", "SE_DEPHEALTH_NAME", "SE_DEPHEALTH_GROUP",
		"SE_DEPHEALTH_DEP_NAME", "SE_ELECTION_RETRY_INTERVAL", "SE_SHUTDOWN_TIMEOUT", "SE_ADVERTISE_ADDR",
		"SE_BIND_ADDR", "SE_JWT_ISSUER", "SE_JWT_AUDIENCE", "SE_PEER_CA_CERT", "SE_PEER_TLS_INSECURE_SKIP_VERIFY",
	}
	got := slices.Clone(configVariables)
	slices.Sort(got)
	slices.Sort(contract)
	if !slices.Equal(got, contract) {
		t.Fatalf("configVariables %v\nwant            %v", got, contract)
	}
}

func TestLoadConfigJWKSURL(t *testing.T) {
	p := newTestPKI(t)
	cases := []struct {
		url string
		ok  bool
	}{
		{"https://admin.example.com/jwks", true},
		{"HTTPS://admin.example.com/jwks", true},
		{"https://10.0.0.5:8443/.well-known/jwks.json?x=1", true},
		{"https://[2001:db8::1]/jwks", true},
		{"http://127.0.0.1:9/jwks", true},
		{"http://127.3.4.5/jwks", true},
		{"http://[::1]/x", true},
		{"http://localhost/x", true},
		{"http://localhost:8080/x", true},
		{"http://example.com/x", false},
		{"http://10.0.0.1/x", false},
		{"http://[::2]/x", false},
		{"http://localhost.example.com/x", false},
		{"http://128.0.0.1/x", false},
		{"ftp://example.com/jwks", false},
		{"file:///etc/jwks.json", false},
		{"/jwks", false},
		{"jwks.json", false},
		{"//admin.example.com/jwks", false},
		{"https:admin.example.com", false},
		{"https://user@admin.example.com/jwks", false},
		{"https://user:pw@admin.example.com/jwks", false},
		{"http://user:pw@127.0.0.1/jwks", false},
		{"https://admin.example.com/jwks#frag", false},
		{"https://admin.example.com/jwks#", false},
		{"https://admin.example.com:0/jwks", false},
		{"https:// admin.example.com/jwks", false},
	}
	for _, c := range cases {
		cfg, err := loadWith(baseEnv(p), envJWKSURL, c.url, true)
		if c.ok {
			if err != nil {
				t.Errorf("%q: unexpected error %v", c.url, err)
			} else if cfg.JWKSURL != c.url {
				t.Errorf("%q: JWKSURL = %q", c.url, cfg.JWKSURL)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: accepted, want rejected", c.url)
			continue
		}
		assertConfigError(t, err, envJWKSURL)
	}
}

// Credentials in the JWKS URL must never reach the log line.
func TestLoadConfigJWKSURLErrorsHideSecrets(t *testing.T) {
	p := newTestPKI(t)
	for _, u := range []string{
		"https://alice:Sup3rSecret@admin.example.com/jwks",
		"http://admin.example.com/jwks?token=Sup3rSecret",
		"ftp://admin.example.com/Sup3rSecret",
		"https://admin.example.com/jwks?token=Sup3rSecret#frag",
		"https://admin.example.com/%zzSup3rSecret",
	} {
		_, err := loadWith(baseEnv(p), envJWKSURL, u, true)
		assertConfigError(t, err, envJWKSURL)
		if strings.Contains(err.Error(), "Sup3rSecret") {
			t.Errorf("error leaks the secret: %q", err)
		}
	}
}

func TestLoadConfigCACertPools(t *testing.T) {
	p := newTestPKI(t)
	verifies := func(pool interface{}) bool {
		_, err := p.cert.Verify(x509.VerifyOptions{Roots: pool.(*x509.CertPool), DNSName: "se-test.local"})
		return err == nil
	}

	cfg, err := loadConfig(mapGetenv(baseEnv(p)))
	if err != nil {
		t.Fatal(err)
	}
	if verifies(cfg.JWKSRootCAs) || verifies(cfg.PeerRootCAs) {
		t.Fatal("the test certificate must not be trusted without a CA file")
	}

	for _, name := range []string{envJWKSCACert, envCACertPath} {
		cfg, err := loadWith(baseEnv(p), name, p.certPath, true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !verifies(cfg.JWKSRootCAs) {
			t.Errorf("%s: CA not added to JWKSRootCAs", name)
		}
		if verifies(cfg.PeerRootCAs) {
			t.Errorf("%s: CA leaked into PeerRootCAs", name)
		}
	}

	cfg, err = loadWith(baseEnv(p), envPeerCACert, p.certPath, true)
	if err != nil {
		t.Fatal(err)
	}
	if !verifies(cfg.PeerRootCAs) || verifies(cfg.JWKSRootCAs) {
		t.Error("SE_PEER_CA_CERT must extend PeerRootCAs only")
	}

	// A bundle mixing a key block and a certificate is accepted (the key is skipped).
	bundle := writeTestFile(t, t.TempDir(), "bundle.pem", append(mustRead(t, p.keyPath), mustRead(t, p.certPath)...))
	cfg, err = loadWith(baseEnv(p), envJWKSCACert, bundle, true)
	if err != nil || !verifies(cfg.JWKSRootCAs) {
		t.Fatalf("mixed bundle: err=%v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadConfigCACertFailsClosed(t *testing.T) {
	p := newTestPKI(t)
	cases := map[string]string{
		"unreadable": "/nonexistent/ca.pem",
		"not PEM":    p.notPEM,
		"no cert":    p.keyOnly,
		"bad cert":   p.badCert,
		"directory":  filepath.Dir(p.certPath),
	}
	for label, path := range cases {
		for _, name := range []string{envJWKSCACert, envCACertPath, envPeerCACert} {
			cfg, err := loadWith(baseEnv(p), name, path, true)
			if cfg != nil {
				t.Errorf("%s %s: config returned with a bad CA file", name, label)
			}
			assertConfigError(t, err, name)
			if label == "unreadable" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: cause not wrapped: %v", name, err)
			}
		}
	}
}

func TestLoadConfigCACertAliasConflict(t *testing.T) {
	p := newTestPKI(t)
	env := baseEnv(p)
	env[envJWKSCACert] = p.certPath
	env[envCACertPath] = p.certPath + ".other"
	_, err := loadConfig(mapGetenv(env))
	assertConfigError(t, err, envJWKSCACert)
	if !strings.Contains(err.Error(), envCACertPath) {
		t.Errorf("conflict error does not name %s: %q", envCACertPath, err)
	}
	// The alias alone, when bad, is named as itself.
	env = baseEnv(p)
	env[envCACertPath] = p.notPEM
	_, err = loadConfig(mapGetenv(env))
	assertConfigError(t, err, envCACertPath)
}

func TestLoadConfigTLSPair(t *testing.T) {
	p := newTestPKI(t)
	env := baseEnv(p)
	env[envTLSKey] = p.otherKey
	_, err := loadConfig(mapGetenv(env))
	assertConfigError(t, err, envTLSKey)
	if !strings.Contains(err.Error(), "key pair") {
		t.Errorf("mismatch error does not say key pair: %q", err)
	}
	// The key file's contents never appear in the message.
	keyPEM := string(mustRead(t, p.otherKey))
	body := strings.Split(keyPEM, "\n")[1]
	if strings.Contains(err.Error(), body[:20]) {
		t.Errorf("error leaks key material: %q", err)
	}

	env = baseEnv(p)
	env[envTLSCert], env[envTLSKey] = p.keyPath, p.certPath // swapped
	_, err = loadConfig(mapGetenv(env))
	assertConfigError(t, err, envTLSCert)
}

func TestConfigLogger(t *testing.T) {
	var buf bytes.Buffer
	c := &Config{LogLevel: slog.LevelInfo, LogFormat: "json"}
	log := c.Logger(&buf)
	log.Debug("hidden")
	log.Info("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json handler output %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["level"] != "INFO" {
		t.Errorf("record = %v", rec)
	}

	buf.Reset()
	c = &Config{LogLevel: slog.LevelDebug, LogFormat: "text"}
	c.Logger(&buf).Debug("visible")
	if got := buf.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "msg=visible") {
		t.Errorf("text handler output %q", got)
	}
}

func TestConfigListenAddr(t *testing.T) {
	for _, c := range []struct {
		bind string
		port int
		want string
	}{
		{"", 8010, ":8010"},
		{"127.0.0.1", 1, "127.0.0.1:1"},
		{"::1", 8443, "[::1]:8443"},
		{"se-01.local", 65535, "se-01.local:65535"},
	} {
		if got := (&Config{BindAddr: c.bind, Port: c.port}).ListenAddr(); got != c.want {
			t.Errorf("ListenAddr(%q, %d) = %q, want %q", c.bind, c.port, got, c.want)
		}
	}
}

func TestFilesystemCapacity(t *testing.T) {
	n, err := FilesystemCapacity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("capacity = %d, want > 0", n)
	}
	if _, err := FilesystemCapacity(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("want an error for a missing directory")
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour: "720h", 10 * time.Minute: "10m", time.Second: "1s",
		10 * time.Second: "10s", 100 * time.Millisecond: "100ms", 90 * time.Minute: "1h30m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestEchoBoundsLength(t *testing.T) {
	long := strings.Repeat("x", 10000)
	_, err := loadWith(map[string]string{}, envPort, long, true)
	assertConfigError(t, err, envPort)
	if len(err.Error()) > 200 {
		t.Fatalf("error is %d bytes long", len(err.Error()))
	}
	if got := echo("a\nb"); got != `"a\nb"` {
		t.Fatalf("echo = %s", got)
	}
}

// FuzzLoadConfig: loadConfig never panics; an error is one line naming a
// listed variable; an accepted config satisfies the documented bounds.
func FuzzLoadConfig(f *testing.F) {
	p := newTestPKI(f)
	f.Add("8010", "se-01", "https://admin.example.com/jwks", "1h", "1073741824", "", "", "false")
	f.Add("http", "-x", "http://example.com/x", "0", "1GiB", "[::1]", "se-01", "yes")
	f.Add("65535", "A", "http://[::1]/x", "720h", "1", "::1", "[::1]:8010", "true")
	f.Add("1", "a.b", "https://u:p@h/x#f", "1ns", "1125899906842625", "256.1.1.1", "h:0", "")
	f.Fuzz(func(t *testing.T, port, storageID, jwksURL, gcInterval, maxFileSize, bindAddr, advertise, insecure string) {
		env := baseEnv(p)
		env[envPort] = port
		env[envStorageID] = storageID
		env[envJWKSURL] = jwksURL
		env[envGCInterval] = gcInterval
		env[envMaxFileSize] = maxFileSize
		env[envBindAddr] = bindAddr
		env[envAdvertiseAddr] = advertise
		env[envPeerTLSInsecure] = insecure
		cfg, err := loadConfig(mapGetenv(env))
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) || !slices.Contains(configVariables, ce.Variable) {
				t.Fatalf("error without a listed variable: %v", err)
			}
			if !strings.HasPrefix(err.Error(), ce.Variable+": ") || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("malformed error line: %q", err)
			}
			return
		}
		if cfg.Port < 1 || cfg.Port > 65535 || !storageIDPattern.MatchString(cfg.StorageID) {
			t.Fatalf("bad port/storage id accepted: %+v", cfg)
		}
		if cfg.GCInterval < time.Second || cfg.GCInterval > 30*day {
			t.Fatalf("GC interval %v accepted", cfg.GCInterval)
		}
		if cfg.MaxFileSize < 1 || cfg.MaxFileSize > maxSizeValue {
			t.Fatalf("max file size %d accepted", cfg.MaxFileSize)
		}
		if !strings.HasPrefix(strings.ToLower(cfg.JWKSURL), "https://") && !strings.HasPrefix(strings.ToLower(cfg.JWKSURL), "http://") {
			t.Fatalf("JWKS URL %q accepted", cfg.JWKSURL)
		}
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			t.Fatalf("accepted JWKS URL fails its own check: %v", err)
		}
		if _, _, err := net.SplitHostPort(cfg.ListenAddr()); err != nil {
			t.Fatalf("ListenAddr %q: %v", cfg.ListenAddr(), err)
		}
		host, portStr, err := net.SplitHostPort(cfg.AdvertiseAddr)
		if err != nil || host == "" {
			t.Fatalf("AdvertiseAddr %q: %v", cfg.AdvertiseAddr, err)
		}
		if n, err := strconv.Atoi(portStr); err != nil || n < 1 || n > 65535 {
			t.Fatalf("AdvertiseAddr port %q", portStr)
		}
		if cfg.PeerTLSInsecure != (insecure == "true") {
			t.Fatalf("PeerTLSInsecure = %v for %q", cfg.PeerTLSInsecure, insecure)
		}
	})
}
