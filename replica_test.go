// replica_test.go — black-box process tests of replicated mode (CONTRACT §9): two or
// three real `se serve` processes share one SE_DATA_DIR, each with its own SE_WAL_DIR
// and loopback port, and are judged only by what an operator sees: /api/v1/info,
// /metrics, HTTP answers relayed through followers, the files in the shared data
// directory (.leader.lock, .leader.info, blob+sidecar pairs) and exit statuses.
//
// Harness (reuses process_test.go: the binary, startChild, seFixture and its upload,
// download and census helpers):
//   - A replicaSet owns one seFixture (temp root, data dir, TLS certificate for
//     127.0.0.1, RSA signing key, JWKS server, client). Each replicaNode is a copy of
//     it with its own port, WAL dir and SE_* overrides: SE_REPLICA_MODE=replicated,
//     SE_ADVERTISE_ADDR=127.0.0.1:<port>, SE_PEER_CA_CERT = the shared certificate
//     (every replica serves it and trusts it for its leader), SE_ELECTION_RETRY_INTERVAL
//     and SE_INDEX_REFRESH_INTERVAL of 1 s.
//   - Every child is killed by PID in t.Cleanup (startChild); every request carries a
//     deadline and every wait is bounded, so no test can hang.
//   - Failover times are measured from the signal to the first /api/v1/info of a
//     survivor that says role "leader", polled every 10 ms, and printed with t.Logf.
//
// Tests: election with two and three replicas; writes forwarded by followers (upload,
// PATCH, DELETE, reconcile; mode transition with SE_MODE=rw) and their propagation;
// a 256 MiB forwarded upload in bounded follower memory; kill -9 and SIGTERM of the
// leader under load; GC and reconciliation only on the leader; a follower with no or
// an unreachable leader; standalone never touching the lock files. Two tests show
// defects found while writing these: a forwarded upload whose client pauses when the
// leader dies (TestReplicaKill9StalledForwardAnswered) and a purged file a follower
// never forgets (TestReplicaFollowerForgetsNoPurgedFile).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

const (
	replRetry   = time.Second // SE_ELECTION_RETRY_INTERVAL of every replica
	replRefresh = time.Second // SE_INDEX_REFRESH_INTERVAL of every replica

	// replFailoverMargin is added to the contract's bound (retry interval + 1 s). The
	// expected worst case is one retry interval (the survivor's ticker fired just before
	// the lock was freed) plus the takeover bookkeeping (.leader.info write + fsync,
	// a few ms). The margin covers what the measurement adds: the 10 ms poll period, one
	// /api/v1/info round trip per survivor and the scheduler of a 2-core machine that
	// runs other -race test binaries at the same time.
	replFailoverMargin = 500 * time.Millisecond

	// replPropagationMargin is added to one refresh interval when waiting for a change
	// to reach a follower that did not forward it: the rescan of the changed shard
	// directory and the poll period on a loaded machine.
	replPropagationMargin = time.Second

	// replQuick bounds an answer a follower must give without a working leader.
	replQuick = 5 * time.Second
)

// ---- the replica set ----

type replicaSet struct {
	t     *testing.T
	base  *seFixture // shared root, data dir, certificate, signing key, JWKS and client
	nodes []*replicaNode
	token string // files:read files:write storage:write
}

type replicaNode struct {
	set    *replicaSet
	name   string
	fx     *seFixture // this replica's port, WAL dir and env; everything else shared
	proc   *childProcess
	starts int
}

// newReplicaSet prepares n replicas (not started) named A, B, C…; extra SE_* values
// apply to all of them.
func newReplicaSet(t *testing.T, n int, extra map[string]string) *replicaSet {
	t.Helper()
	base := newSEFixture(t)
	s := &replicaSet{t: t, base: base, token: base.token("files:read", "files:write", "storage:write")}
	for i := range n {
		name := string(rune('A' + i))
		fx := *base
		fx.port = freePort(t)
		fx.walDir = filepath.Join(base.root, "wal-"+name)
		fx.env = map[string]*string{
			"SE_REPLICA_MODE":            strp("replicated"),
			"SE_ADVERTISE_ADDR":          strp("127.0.0.1:" + strconv.Itoa(fx.port)),
			"SE_PEER_CA_CERT":            strp(base.certPath),
			"SE_ELECTION_RETRY_INTERVAL": strp(replRetry.String()),
			"SE_INDEX_REFRESH_INTERVAL":  strp(replRefresh.String()),
			"SE_LOG_FORMAT":              strp("json"),
		}
		for k, v := range extra {
			fx.env[k] = strp(v)
		}
		s.nodes = append(s.nodes, &replicaNode{set: s, name: name, fx: &fx})
	}
	return s
}

// start launches the replica's process (again, after a kill) on its port and WAL dir.
func (n *replicaNode) start() {
	n.set.t.Helper()
	n.starts++
	n.proc = startChild(n.set.t, fmt.Sprintf("replica-%s-run%d", n.name, n.starts), []string{"serve"}, n.fx.serveEnv(), n.fx.root, nil)
}

func (n *replicaNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.fx.port) }

// startReady starts the given replicas at once, then waits until each is ready.
func (s *replicaSet) startReady(nodes ...*replicaNode) {
	s.t.Helper()
	for _, n := range nodes {
		n.start()
	}
	for _, n := range nodes {
		n.fx.waitReady(n.proc)
	}
}

// replInfo is /api/v1/info with the replication fields (CONTRACT §4).
type replInfo struct {
	Mode              string   `json:"mode"`
	ReplicaMode       string   `json:"replica_mode"`
	Role              string   `json:"role"`
	AllowedOperations []string `json:"allowed_operations"`
}

// do sends one request with a deadline and returns the status and the whole body.
func (n *replicaNode) do(timeout time.Duration, method, path, token string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.fx.baseURL()+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.fx.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func (n *replicaNode) info(timeout time.Duration) (replInfo, error) {
	var info replInfo
	status, body, err := n.do(timeout, http.MethodGet, "/api/v1/info", "", nil)
	if err != nil {
		return info, err
	}
	if status != http.StatusOK {
		return info, fmt.Errorf("/api/v1/info: status %d", status)
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, fmt.Errorf("/api/v1/info %s: %w", body, err)
	}
	return info, nil
}

func replErrorCode(body []byte) string {
	var eb procErrorBody
	json.Unmarshal(body, &eb)
	return eb.Error.Code
}

// metadata GETs one file's metadata through n (10 s deadline).
func (n *replicaNode) metadata(id string) (int, procFileMeta, error) {
	var m procFileMeta
	status, body, err := n.do(10*time.Second, http.MethodGet, "/api/v1/files/"+id, n.set.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &m)
	}
	return status, m, err
}

// scrape reads /metrics into "series" → value, where series is the exposition's name
// with its label set exactly as written (`se_replica_role{role="leader"}`).
func (n *replicaNode) scrape() (map[string]float64, error) {
	status, body, err := n.do(10*time.Second, http.MethodGet, "/metrics", "", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", status)
	}
	series := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("/metrics: malformed line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: value of %q: %w", line, err)
		}
		series[line[:i]] = v
	}
	return series, nil
}

func (n *replicaNode) mustScrape() map[string]float64 {
	n.set.t.Helper()
	m, err := n.scrape()
	if err != nil {
		n.set.t.Fatalf("replica %s: %v", n.name, err)
	}
	return m
}

// leaderInfoOnDisk reads {data}/.leader.info.
func (s *replicaSet) leaderInfoOnDisk() (address string, pid int, err error) {
	data, err := os.ReadFile(filepath.Join(s.base.dataDir, ".leader.info"))
	if err != nil {
		return "", 0, err
	}
	var doc struct {
		Address string    `json:"address"`
		PID     int       `json:"pid"`
		Since   time.Time `json:"since"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", 0, fmt.Errorf("decode .leader.info %q: %w", data, err)
	}
	if doc.Since.IsZero() {
		return "", 0, fmt.Errorf(".leader.info %q has no since", data)
	}
	return doc.Address, doc.PID, nil
}

// waitStable polls the replicas until exactly one says leader and accepts uploads and
// every other one says follower and knows a leader (upload among its
// allowed_operations: the mode must allow uploads). It returns the leader.
func (s *replicaSet) waitStable(d time.Duration, nodes ...*replicaNode) *replicaNode {
	s.t.Helper()
	var leader *replicaNode
	var last []string
	ok := waitFor(d, func() bool {
		leader, last = nil, last[:0]
		settled := true
		for _, n := range nodes {
			info, err := n.info(2 * time.Second)
			last = append(last, fmt.Sprintf("%s: %+v err %v", n.name, info, err))
			switch {
			case err != nil || !slices.Contains(info.AllowedOperations, "upload"):
				settled = false
			case info.Role == "leader" && leader == nil:
				leader = n
			case info.Role != "follower":
				settled = false
			}
		}
		return settled && leader != nil
	})
	if !ok {
		s.t.Fatalf("no stable leader/followers within %v: %v", d, last)
	}
	return leader
}

// checkRoles samples /api/v1/info of every replica several times: exactly one leader
// (want), the others followers, replica_mode replicated; .leader.info names the
// leader's advertised address and pid; se_replica_role says the same.
func (s *replicaSet) checkRoles(want *replicaNode, nodes ...*replicaNode) {
	s.t.Helper()
	for round := range 5 {
		var leaders []string
		for _, n := range nodes {
			info, err := n.info(5 * time.Second)
			if err != nil {
				s.t.Fatalf("round %d: replica %s: %v", round, n.name, err)
			}
			if info.ReplicaMode != "replicated" {
				s.t.Errorf("replica %s: replica_mode %q, want replicated", n.name, info.ReplicaMode)
			}
			switch info.Role {
			case "leader":
				leaders = append(leaders, n.name)
			case "follower":
			default:
				s.t.Errorf("replica %s: role %q", n.name, info.Role)
			}
		}
		if len(leaders) != 1 || leaders[0] != want.name {
			s.t.Fatalf("round %d: leaders %v, want exactly [%s]", round, leaders, want.name)
		}
		time.Sleep(150 * time.Millisecond)
	}
	addr, pid, err := s.leaderInfoOnDisk()
	if err != nil {
		s.t.Fatalf(".leader.info: %v", err)
	}
	if addr != want.addr() || pid != want.proc.pid {
		s.t.Errorf(".leader.info names %s pid %d, want the leader %s at %s pid %d", addr, pid, want.name, want.addr(), want.proc.pid)
	}
	for _, n := range nodes {
		m := n.mustScrape()
		for _, role := range []string{"standalone", "follower", "leader"} {
			wantV := 0.0
			if (n == want && role == "leader") || (n != want && role == "follower") {
				wantV = 1
			}
			key := `se_replica_role{role="` + role + `"}`
			if v, ok := m[key]; !ok || v != wantV {
				s.t.Errorf("replica %s: %s = %v (present %v), want %v", n.name, key, v, ok, wantV)
			}
		}
	}
}

// replicasExcept returns the nodes except skip.
func replicasExcept(nodes []*replicaNode, skip ...*replicaNode) []*replicaNode {
	var out []*replicaNode
	for _, n := range nodes {
		if !slices.Contains(skip, n) {
			out = append(out, n)
		}
	}
	return out
}

// pollLeader polls the nodes' /api/v1/info every 10 ms until one says leader, at most
// until deadline; it returns that node and when its answer arrived (nil if none).
func pollLeader(nodes []*replicaNode, deadline time.Time) (*replicaNode, time.Time) {
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if info, err := n.info(time.Second); err == nil && info.Role == "leader" {
				return n, time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, time.Time{}
}

// uploadVia uploads size pattern bytes with description and tags through n and fails
// the test unless it gets a 201 describing exactly what was sent.
func (s *replicaSet) uploadVia(n *replicaNode, name string, seed uint64, size int64, desc *string, tags []string) procFileMeta {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := &uploadAttempt{name: name, size: size, src: newPatternReader(seed, size), ctype: "application/octet-stream", desc: desc, tags: tags}
	status, body, err := n.fx.upload(ctx, s.token, uploadSpec{filename: name, contentType: a.ctype, description: desc, tags: tags, content: a.src, size: size})
	if err != nil || status != http.StatusCreated {
		s.t.Fatalf("upload %s through %s: status %d err %v body %s", name, n.name, status, err, body)
	}
	if err := json.Unmarshal(body, &a.meta); err != nil {
		s.t.Fatalf("upload %s: body %s: %v", name, body, err)
	}
	return a.meta
}

// replCensus walks the shared data dir; the election files are expected at its top.
func replCensus(t *testing.T, dataDir string) diskCensus {
	t.Helper()
	c, err := censusDataDir(dataDir)
	if err != nil {
		t.Fatalf("walk data dir: %v", err)
	}
	var problems []string
	for _, p := range c.problems {
		if p != "unexpected top-level entry .leader.lock" && p != "unexpected top-level entry .leader.info" {
			problems = append(problems, p)
		}
	}
	c.problems = problems
	return c
}

// checkPairs asserts a consistent shared data dir (no stray entries, no temp files,
// every blob with its sidecar and vice versa) and returns the number of pairs.
func checkPairs(t *testing.T, dataDir string) int {
	t.Helper()
	c := replCensus(t, dataDir)
	for _, p := range c.problems {
		t.Errorf("data dir: %s", p)
	}
	if len(c.temps) > 0 {
		t.Errorf("data dir: temp files: %v", c.temps)
	}
	for blob := range c.blobs {
		if !c.sidecars[blob] {
			t.Errorf("data dir: blob without sidecar: %s", blob)
		}
	}
	for blob := range c.sidecars {
		if _, ok := c.blobs[blob]; !ok {
			t.Errorf("data dir: sidecar without blob: %s.attr.json", blob)
		}
	}
	return len(c.sidecars)
}

// censusFilesOf counts the blobs and sidecars of one file id.
func censusFilesOf(c diskCensus, id string) (blobs, sidecars int) {
	for p := range c.blobs {
		if strings.Contains(p, id) {
			blobs++
		}
	}
	for p := range c.sidecars {
		if strings.Contains(p, id) {
			sidecars++
		}
	}
	return blobs, sidecars
}

// waitAllReplicas polls cond for every node until it holds on all of them, at most
// d; it returns the names of the nodes it still fails on.
func waitAllReplicas(d time.Duration, nodes []*replicaNode, cond func(n *replicaNode) bool) []string {
	var failing []string
	waitFor(d, func() bool {
		failing = failing[:0]
		for _, n := range nodes {
			if !cond(n) {
				failing = append(failing, n.name)
			}
		}
		return len(failing) == 0
	})
	return failing
}

// ---- 1. election ----

// TestReplicaElection: two replicas started together elect exactly one leader; a third
// joins as a follower without changing it; .leader.info names the leader.
func TestReplicaElection(t *testing.T) {
	s := newReplicaSet(t, 3, nil)
	a, b, c := s.nodes[0], s.nodes[1], s.nodes[2]
	s.startReady(a, b)
	leader := s.waitStable(10*time.Second, a, b)
	t.Logf("two replicas: %s leads", leader.name)
	s.checkRoles(leader, a, b)

	s.startReady(c)
	if got := s.waitStable(10*time.Second, a, b, c); got != leader {
		t.Fatalf("a third replica joining moved leadership from %s to %s", leader.name, got.name)
	}
	s.checkRoles(leader, a, b, c)
	if _, err := os.Stat(filepath.Join(s.base.dataDir, ".leader.lock")); err != nil {
		t.Errorf(".leader.lock: %v", err)
	}
}

// ---- 2. forwarded writes ----

// TestReplicaForwardedWrites (edit mode): an upload through a follower is stored once
// and readable at once through it, the leader and the other follower; PATCH and
// DELETE through followers reach every replica within one refresh interval; mode
// transition and reconcile are relayed to the leader.
func TestReplicaForwardedWrites(t *testing.T) {
	s := newReplicaSet(t, 3, nil)
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	fs := replicasExcept(s.nodes, leader)
	f1, f2 := fs[0], fs[1]
	propagation := replRefresh + replPropagationMargin

	meta := s.uploadVia(f1, "through-follower.bin", 31, 300<<10, strp("first"), []string{"a"})
	if meta.UploadedBy != procSubject || meta.RetentionPolicy != "temporary" || meta.Status != "active" {
		t.Errorf("upload through a follower: %s", meta.canonical())
	}
	// Read-after-write: every replica answers at once (followers look on disk).
	for _, n := range []*replicaNode{f1, leader, f2} {
		status, got, err := n.metadata(meta.FileID)
		if err != nil || status != http.StatusOK || got.canonical() != meta.canonical() {
			t.Errorf("metadata through %s right after the upload: status %d err %v\n got  %s\n want %s", n.name, status, err, got.canonical(), meta.canonical())
		}
		n.fx.checkDownload(s.token, meta)
	}
	c := replCensus(t, s.base.dataDir)
	if blobs, sidecars := censusFilesOf(c, meta.FileID); blobs != 1 || sidecars != 1 {
		t.Errorf("file %s on disk: %d blobs, %d sidecars; want exactly one pair", meta.FileID, blobs, sidecars)
	}
	if pairs := checkPairs(t, s.base.dataDir); pairs != 1 {
		t.Errorf("%d blob+sidecar pairs on disk, want 1", pairs)
	}
	if failing := waitAllReplicas(propagation, s.nodes, func(n *replicaNode) bool {
		var page procFileList
		status, _ := n.fx.getJSON("/api/v1/files", s.token, &page)
		return status == http.StatusOK && page.Total == 1 && len(page.Items) == 1 && page.Items[0].canonical() == meta.canonical()
	}); len(failing) > 0 {
		t.Errorf("the upload is not listed by %v %v after it", failing, propagation)
	}

	// PATCH through f2: f2 and the leader see it at once, f1 within one refresh.
	status, body, err := f2.do(10*time.Second, http.MethodPatch, "/api/v1/files/"+meta.FileID, s.token, []byte(`{"description":"patched","tags":["x","y"]}`))
	var patched procFileMeta
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &patched) != nil ||
		patched.Description == nil || *patched.Description != "patched" || fmt.Sprint(patched.Tags) != "[x y]" {
		t.Fatalf("PATCH through follower %s: status %d err %v body %s", f2.name, status, err, body)
	}
	isPatched := func(n *replicaNode) bool {
		status, got, err := n.metadata(meta.FileID)
		return err == nil && status == http.StatusOK && got.canonical() == patched.canonical()
	}
	for _, n := range []*replicaNode{f2, leader} {
		if !isPatched(n) {
			t.Errorf("%s does not show the PATCH it just answered/relayed", n.name)
		}
	}
	if failing := waitAllReplicas(propagation, s.nodes, isPatched); len(failing) > 0 {
		t.Errorf("the PATCH did not reach %v within %v", failing, propagation)
	}

	// Mode transition out of edit is refused by the leader, and the refusal relayed.
	status, body, err = f1.do(10*time.Second, http.MethodPost, "/api/v1/mode/transition", s.token, []byte(`{"target_mode":"ro"}`))
	if err != nil || status != http.StatusConflict || replErrorCode(body) != "INVALID_TRANSITION" {
		t.Errorf("transition edit→ro through a follower: status %d err %v body %s, want 409 INVALID_TRANSITION", status, err, body)
	}
	// Reconcile through a follower runs on the leader.
	var rep struct {
		FilesChecked int `json:"files_checked"`
		Summary      struct {
			OK int `json:"ok"`
		} `json:"summary"`
	}
	status, body, err = f2.do(30*time.Second, http.MethodPost, "/api/v1/maintenance/reconcile", s.token, nil)
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &rep) != nil || rep.FilesChecked != 1 || rep.Summary.OK != 1 {
		t.Errorf("reconcile through a follower: status %d err %v body %s, want 200 with 1 file checked and ok", status, err, body)
	}

	// DELETE through f1: deleted everywhere within one refresh interval.
	status, body, err = f1.do(10*time.Second, http.MethodDelete, "/api/v1/files/"+meta.FileID, s.token, nil)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("DELETE through follower %s: status %d err %v body %s", f1.name, status, err, body)
	}
	isDeleted := func(n *replicaNode) bool {
		status, got, err := n.metadata(meta.FileID)
		if err != nil || status != http.StatusOK || got.Status != "deleted" {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dl, err := n.fx.download(ctx, s.token, meta.FileID)
		return err == nil && dl.status == http.StatusNotFound
	}
	for _, n := range []*replicaNode{f1, leader} {
		if !isDeleted(n) {
			t.Errorf("%s does not show the DELETE it just relayed/answered", n.name)
		}
	}
	if failing := waitAllReplicas(propagation, s.nodes, isDeleted); len(failing) > 0 {
		t.Errorf("the DELETE did not reach %v within %v", failing, propagation)
	}
	status, body, err = f2.do(10*time.Second, http.MethodDelete, "/api/v1/files/"+meta.FileID, s.token, nil)
	if err != nil || status != http.StatusNotFound {
		t.Errorf("second DELETE through %s: status %d err %v body %s, want 404", f2.name, status, err, body)
	}
}

// TestReplicaForwardedModeTransition (SE_MODE=rw): a transition rw→ro through a
// follower is made by the leader and reaches every replica within one refresh
// interval; afterwards writes through any replica get the leader's 409.
func TestReplicaForwardedModeTransition(t *testing.T) {
	s := newReplicaSet(t, 3, map[string]string{"SE_MODE": "rw"})
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	fs := replicasExcept(s.nodes, leader)
	f1, f2 := fs[0], fs[1]
	propagation := replRefresh + replPropagationMargin

	meta := s.uploadVia(f2, "rw.bin", 41, 64<<10, nil, nil)
	if meta.RetentionPolicy != "permanent" || meta.TTLDays != nil || meta.ExpiresAt != nil {
		t.Errorf("upload in rw through a follower: %s", meta.canonical())
	}
	status, body, err := f1.do(10*time.Second, http.MethodPatch, "/api/v1/files/"+meta.FileID, s.token, []byte(`{"tags":["rw"]}`))
	if err != nil || status != http.StatusOK {
		t.Errorf("PATCH in rw through %s: status %d err %v body %s", f1.name, status, err, body)
	}
	status, body, err = f1.do(10*time.Second, http.MethodDelete, "/api/v1/files/"+meta.FileID, s.token, nil)
	if err != nil || status != http.StatusConflict || replErrorCode(body) != "MODE_NOT_ALLOWED" {
		t.Errorf("DELETE in rw through %s: status %d err %v body %s, want 409 MODE_NOT_ALLOWED", f1.name, status, err, body)
	}

	status, body, err = f1.do(10*time.Second, http.MethodPost, "/api/v1/mode/transition", s.token, []byte(`{"target_mode":"ro"}`))
	var tr struct {
		Previous string `json:"previous_mode"`
		Current  string `json:"current_mode"`
	}
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.Previous != "rw" || tr.Current != "ro" {
		t.Fatalf("transition rw→ro through follower %s: status %d err %v body %s", f1.name, status, err, body)
	}
	isRO := func(n *replicaNode) bool {
		info, err := n.info(5 * time.Second)
		return err == nil && info.Mode == "ro" && fmt.Sprint(info.AllowedOperations) == "[download list]"
	}
	for _, n := range []*replicaNode{f1, leader} {
		if !isRO(n) {
			t.Errorf("%s does not report mode ro right after the transition it relayed/made", n.name)
		}
	}
	if failing := waitAllReplicas(propagation, s.nodes, isRO); len(failing) > 0 {
		t.Errorf("the transition did not reach %v within %v", failing, propagation)
	}
	doc, err := readModeFile(s.base.dataDir)
	if err != nil || doc.Mode != modeRO || doc.UpdatedBy != procSubject {
		t.Errorf("mode.json: %+v err %v, want ro by %s", doc, err, procSubject)
	}
	for _, n := range s.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		status, body, err := n.fx.upload(ctx, s.token, uploadSpec{filename: "late.bin", contentType: "text/plain", content: strings.NewReader("late"), size: 4})
		cancel()
		if err != nil || status != http.StatusConflict || replErrorCode(body) != "MODE_NOT_ALLOWED" {
			t.Errorf("upload in ro through %s: status %d err %v body %s, want 409 MODE_NOT_ALLOWED", n.name, status, err, body)
		}
		n.fx.checkDownload(s.token, meta)
	}
}

// ---- 3. forwarding streams ----

// TestReplicaForwardStreamsUpload: a 256 MiB upload through a follower, generated on
// the fly, succeeds and raises the follower's peak RSS by less than 32 MiB; so does
// downloading it back through the follower.
func TestReplicaForwardStreamsUpload(t *testing.T) {
	const size = 256 << 20
	const bound = 32 << 20
	s := newReplicaSet(t, 2, nil)
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	f := replicasExcept(s.nodes, leader)[0]

	warm := f.fx.uploadPattern(s.token, "warm-up.bin", 51, 1<<20)
	f.fx.checkDownload(s.token, warm)
	before := f.fx.mustHWM(f.proc)
	leaderBefore := leader.fx.mustHWM(leader.proc)

	began := time.Now()
	big := f.fx.uploadPattern(s.token, "big.bin", 52, size)
	took := time.Since(began)
	after := f.fx.mustHWM(f.proc)
	leaderAfter := leader.fx.mustHWM(leader.proc)
	t.Logf("256 MiB through follower %s in %v; follower VmHWM %d → %d KiB (+%d KiB); leader VmHWM %d → %d KiB",
		f.name, took.Round(time.Millisecond), before>>10, after>>10, (after-before)>>10, leaderBefore>>10, leaderAfter>>10)
	if after-before >= bound {
		t.Errorf("forwarding a 256 MiB upload raised the follower's peak RSS by %d KiB (bound %d KiB)", (after-before)>>10, bound>>10)
	}

	f.fx.checkDownload(s.token, big)
	afterDownload := f.fx.mustHWM(f.proc)
	t.Logf("follower VmHWM after downloading it back %d KiB", afterDownload>>10)
	if afterDownload-before >= bound {
		t.Errorf("upload+download of 256 MiB through a follower raised its peak RSS by %d KiB (bound %d KiB)", (afterDownload-before)>>10, bound>>10)
	}
	c := replCensus(t, s.base.dataDir)
	if blobs, sidecars := censusFilesOf(c, big.FileID); blobs != 1 || sidecars != 1 || c.blobs[censusBlobOf(c, big.FileID)] != size {
		t.Errorf("big file on disk: %d blobs, %d sidecars", blobs, sidecars)
	}
}

func censusBlobOf(c diskCensus, id string) string {
	for p := range c.blobs {
		if strings.Contains(p, id) {
			return p
		}
	}
	return ""
}

// ---- 4. kill -9 the leader ----

// replUpload is one upload of the failover test and what its client learnt.
type replUpload struct {
	a        *uploadAttempt
	via      *replicaNode
	started  time.Time
	ended    time.Time
	status   int
	code     string
	err      error
	timedOut bool
}

// uploadStream runs upload workers (one per target) until stop is closed.
type uploadStream struct {
	s       *replicaSet
	mu      sync.Mutex
	done    []*replUpload
	created atomic.Int32
	stop    chan struct{}
	wg      sync.WaitGroup
}

const replUploadTimeout = 10 * time.Second

func (s *replicaSet) startUploads(seed uint64, targets ...*replicaNode) *uploadStream {
	us := &uploadStream{s: s, stop: make(chan struct{})}
	for w, n := range targets {
		rng := mrand.New(mrand.NewPCG(seed, uint64(w)))
		us.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-us.stop:
					return
				default:
				}
				us.record(us.one(rng, n, fmt.Sprintf("kill-w%d-%d.bin", w, i)))
			}
		})
	}
	return us
}

func (us *uploadStream) one(rng *mrand.Rand, n *replicaNode, name string) *replUpload {
	a := newAttempt(rng, name, false)
	u := &replUpload{a: a, via: n, started: time.Now()}
	spec := uploadSpec{filename: a.name, contentType: a.ctype, description: a.desc, tags: a.tags, content: a.src, size: a.size}
	if rng.IntN(2) == 0 {
		spec.size = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), replUploadTimeout)
	defer cancel()
	status, body, err := n.fx.upload(ctx, us.s.token, spec)
	u.ended, u.status, u.err = time.Now(), status, err
	u.timedOut = err != nil && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil)
	if err == nil && status == http.StatusCreated {
		if jerr := json.Unmarshal(body, &a.meta); jerr != nil {
			u.err = fmt.Errorf("201 with body %s: %w", body, jerr)
		}
	} else if err == nil {
		u.code = replErrorCode(body)
	}
	if err != nil || status != http.StatusCreated {
		time.Sleep(20 * time.Millisecond) // a client backs off a little after an error
	}
	return u
}

func (us *uploadStream) record(u *replUpload) {
	us.mu.Lock()
	us.done = append(us.done, u)
	us.mu.Unlock()
	if u.status == http.StatusCreated && u.err == nil {
		us.created.Add(1)
	}
}

// createdSince reports whether n answered 201 to an upload started after t.
func (us *uploadStream) createdSince(n *replicaNode, t time.Time) bool {
	us.mu.Lock()
	defer us.mu.Unlock()
	for _, u := range us.done {
		if u.via == n && u.started.After(t) && u.status == http.StatusCreated && u.err == nil {
			return true
		}
	}
	return false
}

// TestReplicaKill9Failover: kill -9 the leader of three replicas while clients upload
// through both followers, and one more trickles a large upload through a follower.
// A survivor leads within SE_ELECTION_RETRY_INTERVAL + 1 s; uploads in the gap get
// 502/503, never hang (the trickling one gets 502 at once); writes work again after;
// every 201 is intact; the shared directory is consistent; the restarted process
// comes back as a follower.
func TestReplicaKill9Failover(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d (set PROCESS_TEST_SEED to replay)", seed)
	rng := mrand.New(mrand.NewPCG(seed, seed^0xfa11))
	s := newReplicaSet(t, 3, nil)
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	survivors := replicasExcept(s.nodes, leader)
	f1, f2 := survivors[0], survivors[1]

	// Three clients through f1, one through f2.
	us := s.startUploads(rng.Uint64(), f1, f1, f1, f2)
	stopped := false
	stopUploads := func() {
		if !stopped {
			stopped = true
			close(us.stop)
			if !waitGroupWithin(&us.wg, 2*replUploadTimeout) {
				t.Fatalf("upload clients still running %v after stop", 2*replUploadTimeout)
			}
		}
	}
	defer stopUploads()
	if !waitFor(20*time.Second, func() bool { return us.created.Load() >= 10 }) {
		t.Fatalf("only %d uploads through followers succeeded in 20s", us.created.Load())
	}
	// One more client trickles a large chunked upload through f1 (a slow WAN link), so
	// the leader dies with a forwarded upload's temp file and WAL entry open.
	trickle := newTrickleReader(newPatternReader(rng.Uint64(), 64<<20), 32<<10, 20*time.Millisecond)
	defer trickle.Close()
	trickled := s.uploadAsync(f1, "trickle.bin", trickle)
	if !waitFor(10*time.Second, func() bool { return tempFileWithData(s.base.dataDir) }) {
		t.Fatal("the leader never wrote the forwarded trickling upload to a temp file")
	}
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)

	killedAt := time.Now()
	leader.fx.killHard(leader.proc)
	t.Logf("killed the leader with %d WAL entries open", len(dirNames(t, leader.fx.walDir)))
	bound := replRetry + time.Second + replFailoverMargin
	newLeader, seenAt := pollLeader(survivors, killedAt.Add(bound+5*time.Second))
	if newLeader == nil {
		t.Fatalf("no survivor became leader within %v of kill -9", bound+5*time.Second)
	}
	failover := seenAt.Sub(killedAt)
	t.Logf("kill -9 failover: %s leads %v after the kill (bound %v = retry %v + 1s + margin %v)",
		newLeader.name, failover.Round(time.Millisecond), bound, replRetry, replFailoverMargin)
	if failover > bound {
		t.Errorf("failover took %v, want ≤ %v", failover, bound)
	}
	// Writes succeed again through both upload targets.
	if failing := waitAllReplicas(replRetry+10*time.Second, survivors, func(n *replicaNode) bool { return us.createdSince(n, seenAt) }); len(failing) > 0 {
		t.Errorf("no upload started after the failover succeeded through %v within %v", failing, replRetry+10*time.Second)
	}
	writesBackAt := time.Now()
	stopUploads()
	// The trickling client, still sending, got its answer without a hang.
	a, answered := awaitAnswer(trickled, killedAt.Add(replQuick))
	switch {
	case !answered:
		t.Errorf("the upload trickling through %s had no answer %v after the leader died", f1.name, replQuick)
	case a.err != nil || a.status != http.StatusBadGateway || replErrorCode(a.body) != "PROXY_ERROR":
		t.Errorf("the upload trickling through %s when the leader died: status %d err %v body %s, want 502 PROXY_ERROR", f1.name, a.status, a.err, a.body)
	default:
		t.Logf("the trickling upload got %d %s %v after the kill", a.status, replErrorCode(a.body), a.at.Sub(killedAt).Round(time.Millisecond))
	}
	trickle.Close()

	ledger, unknown := s.judgeUploads(us.done, killedAt, seenAt, writesBackAt)
	s.checkLedger(newLeader, ledger, unknown, survivors)
	if names := dirNames(t, newLeader.fx.walDir); len(names) > 0 {
		t.Errorf("the new leader's WAL dir is not empty: %v", names)
	}
	t.Logf("the killed leader's WAL dir holds %d entries (recovered when it leads again)", len(dirNames(t, leader.fx.walDir)))
	if addr, _, err := s.leaderInfoOnDisk(); err != nil || addr != newLeader.addr() {
		t.Errorf(".leader.info names %q (err %v), want the new leader %s", addr, err, newLeader.addr())
	}

	// The killed replica comes back as a follower of the new leader.
	leader.start()
	leader.fx.waitReady(leader.proc)
	if got := s.waitStable(replRetry+10*time.Second, s.nodes...); got != newLeader {
		t.Fatalf("after the restart %s leads, want %s", got.name, newLeader.name)
	}
	s.checkRoles(newLeader, s.nodes...)
	back := s.uploadVia(leader, "after-restart.bin", rng.Uint64(), 100<<10, nil, nil)
	ledger[back.FileID] = back
	for _, m := range ledger {
		if status, got, err := leader.metadata(m.FileID); err != nil || status != http.StatusOK || got.canonical() != m.canonical() {
			t.Errorf("restarted %s: metadata of %s: status %d err %v", leader.name, m.FileID, status, err)
		}
	}
	leader.fx.checkDownload(s.token, back)
}

// judgeUploads checks every answer of the upload stream against the failover timeline
// and returns the files known committed (file_id → metadata) and the uploads whose
// client got no 201 (original filename → attempt).
func (s *replicaSet) judgeUploads(done []*replUpload, killedAt, leaderAt, backAt time.Time) (map[string]procFileMeta, map[string]*uploadAttempt) {
	t := s.t
	t.Helper()
	ledger := map[string]procFileMeta{}
	counts := map[string]int{}
	var slowest time.Duration
	for _, u := range done {
		phase := "before the kill"
		switch {
		case u.ended.After(backAt):
			phase = "after writes were back"
		case u.ended.After(leaderAt):
			phase = "after the new leader"
		case u.ended.After(killedAt):
			phase = "in the gap"
		}
		took := u.ended.Sub(u.started)
		switch {
		case u.timedOut:
			t.Errorf("upload %s through %s timed out after %v (%s)", u.a.name, u.via.name, took, phase)
		case u.err != nil:
			counts[phase+": transport error"]++
			inFlight := u.started.Before(killedAt)
			if !inFlight {
				t.Errorf("upload %s through %s (%s, not in flight at the kill) failed without an answer: %v", u.a.name, u.via.name, phase, u.err)
			} else {
				t.Logf("upload %s through %s in flight at the kill: %v", u.a.name, u.via.name, u.err)
			}
		case u.status == http.StatusCreated:
			counts[phase+": 201"]++
			if msg := checkUploadMeta(u.a, u.a.meta); msg != "" {
				t.Errorf("upload %s: 201 with wrong metadata: %s", u.a.name, msg)
			}
			ledger[u.a.meta.FileID] = u.a.meta
		case u.status == http.StatusBadGateway && u.code == "PROXY_ERROR", u.status == http.StatusServiceUnavailable && u.code == "LEADER_UNKNOWN":
			counts[fmt.Sprintf("%s: %d %s", phase, u.status, u.code)]++
			slowest = max(slowest, took)
			if u.ended.Before(killedAt) {
				t.Errorf("upload %s through %s got %d %s before the kill", u.a.name, u.via.name, u.status, u.code)
			}
		default:
			t.Errorf("upload %s through %s (%s): status %d code %q, want 201, 502 PROXY_ERROR or 503 LEADER_UNKNOWN", u.a.name, u.via.name, phase, u.status, u.code)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %d", k, counts[k])
	}
	t.Logf("%d uploads; slowest 502/503 answer %v; outcomes:%s", len(done), slowest.Round(time.Millisecond), b.String())

	unknown := map[string]*uploadAttempt{}
	for _, u := range done {
		if u.status != http.StatusCreated || u.err != nil {
			unknown[u.a.name] = u.a
		}
	}
	return ledger, unknown
}

// checkLedger verifies through leader and followers that every committed upload is
// intact, that nothing else appeared except uploads whose answer was lost but whose
// content was sent whole, and that the shared directory holds exactly those files.
func (s *replicaSet) checkLedger(leader *replicaNode, ledger map[string]procFileMeta, unknown map[string]*uploadAttempt, readers []*replicaNode) {
	t := s.t
	t.Helper()
	items := leader.fx.listAll(s.token)
	seen := map[string]bool{}
	for _, it := range items {
		seen[it.FileID] = true
		if want, ok := ledger[it.FileID]; ok {
			if want.canonical() != it.canonical() {
				t.Errorf("file %s changed across the failover:\n got  %s\n want %s", it.FileID, it.canonical(), want.canonical())
			}
			continue
		}
		a := unknown[it.OriginalFilename]
		if a == nil {
			t.Errorf("unexpected file after the failover: %s", it.canonical())
			continue
		}
		if msg := checkUploadMeta(a, it); msg != "" {
			t.Errorf("upload %s without a 201 was committed wrongly: %s", a.name, msg)
			continue
		}
		t.Logf("upload %s (%d bytes) was committed although its client got no 201", a.name, a.size)
		ledger[it.FileID] = it
	}
	for id, m := range ledger {
		if !seen[id] {
			t.Errorf("upload %s (%s, %d bytes) got 201 but is gone after the failover", id, m.OriginalFilename, m.Size)
		}
	}
	for _, n := range readers {
		for _, m := range ledger {
			n.fx.checkDownload(s.token, m)
		}
	}
	if pairs := checkPairs(t, s.base.dataDir); pairs != len(items) {
		t.Errorf("%d blob+sidecar pairs on disk, %d files listed", pairs, len(items))
	}
	t.Logf("%d files committed, all intact through %d replicas", len(ledger), len(readers))
}

// ---- 5. SIGTERM the leader ----

// readFailure is one read that did not deliver exactly the stored file.
type readFailure struct {
	node   *replicaNode
	at     time.Time
	what   string
	status int // 0 when no answer arrived
	err    error
}

// readStream runs readers (GET metadata, then the whole download) until stop.
type readStream struct {
	mu       sync.Mutex
	ok       map[*replicaNode]int
	failures []readFailure
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (s *replicaSet) startReaders(files []procFileMeta, perNode int, nodes ...*replicaNode) *readStream {
	rs := &readStream{ok: map[*replicaNode]int{}, stop: make(chan struct{})}
	for i, n := range nodes {
		for r := range perNode {
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(r)))
			rs.wg.Go(func() {
				for {
					select {
					case <-rs.stop:
						return
					default:
					}
					rs.readOnce(s, n, files[rng.IntN(len(files))])
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	return rs
}

func (rs *readStream) readOnce(s *replicaSet, n *replicaNode, m procFileMeta) {
	fail := func(what string, status int, err error) {
		rs.mu.Lock()
		rs.failures = append(rs.failures, readFailure{node: n, at: time.Now(), what: what, status: status, err: err})
		rs.mu.Unlock()
	}
	status, got, err := n.metadata(m.FileID)
	if err != nil || status != http.StatusOK || got.canonical() != m.canonical() {
		fail("metadata", status, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dl, err := n.fx.download(ctx, s.token, m.FileID)
	switch {
	case err != nil && dl.status == 0:
		fail("download", 0, err)
		return
	case err != nil || dl.status != http.StatusOK || dl.n != m.Size || dl.sum != m.Checksum:
		fail("download", dl.status, fmt.Errorf("got %d bytes sha256 %s, want %d bytes %s (err %v)", dl.n, dl.sum, m.Size, m.Checksum, err))
		return
	}
	rs.mu.Lock()
	rs.ok[n]++
	rs.mu.Unlock()
}

func (rs *readStream) okCount(n *replicaNode) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.ok[n]
}

// TestReplicaSIGTERMFailover: SIGTERM the leader of three replicas while readers read
// (metadata + download) through every replica. A follower takes over within
// SE_ELECTION_RETRY_INTERVAL + 1 s, not one read through the followers fails, reads
// through the stopping leader fail only by being refused a connection after the
// signal, the leader logs that it released the lock and exits 0, and writes work
// through the new leader afterwards.
func TestReplicaSIGTERMFailover(t *testing.T) {
	s := newReplicaSet(t, 3, map[string]string{"SE_SHUTDOWN_TIMEOUT": "10s"})
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	survivors := replicasExcept(s.nodes, leader)
	var files []procFileMeta
	for i := range 6 {
		via := s.nodes[i%3]
		files = append(files, s.uploadVia(via, fmt.Sprintf("read-%d.bin", i), uint64(60+i), int64(i*50<<10), nil, nil))
	}

	rs := s.startReaders(files, 2, s.nodes...)
	defer func() {
		close(rs.stop)
		if !waitGroupWithin(&rs.wg, 30*time.Second) {
			t.Errorf("readers still running 30s after stop")
		}
	}()
	if failing := waitAllReplicas(10*time.Second, s.nodes, func(n *replicaNode) bool { return rs.okCount(n) >= 20 }); len(failing) > 0 {
		t.Fatalf("readers through %v did not get going", failing)
	}

	sigAt := time.Now()
	if err := leader.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	bound := replRetry + time.Second + replFailoverMargin
	newLeader, seenAt := pollLeader(survivors, sigAt.Add(bound+5*time.Second))
	if newLeader == nil {
		t.Fatalf("no follower took over within %v of SIGTERM", bound+5*time.Second)
	}
	takeover := seenAt.Sub(sigAt)
	t.Logf("SIGTERM failover: %s leads %v after the signal (bound %v)", newLeader.name, takeover.Round(time.Millisecond), bound)
	if takeover > bound {
		t.Errorf("takeover after SIGTERM took %v, want ≤ %v", takeover, bound)
	}
	if !leader.proc.waitExit(20 * time.Second) {
		t.Fatalf("the SIGTERMed leader did not exit within 20s")
	}
	exitedAt := time.Now()
	t.Logf("the SIGTERMed leader exited %v after the signal with %v", exitedAt.Sub(sigAt).Round(time.Millisecond), leader.proc.state)
	if leader.proc.state.ExitCode() != 0 {
		t.Errorf("the SIGTERMed leader exited with %v, want 0", leader.proc.state)
	}

	// Writes work through the new leader and (once it re-read .leader.info) the follower.
	follower := replicasExcept(survivors, newLeader)[0]
	s.uploadVia(newLeader, "after-term-leader.bin", 70, 10<<10, nil, nil)
	s.eventuallyUpload(follower, "after-term-follower.bin", replRetry+5*time.Second)

	// Keep reading a while on the new arrangement.
	okBefore := map[*replicaNode]int{}
	for _, n := range survivors {
		okBefore[n] = rs.okCount(n)
	}
	time.Sleep(time.Second)
	for _, n := range survivors {
		if rs.okCount(n) <= okBefore[n] {
			t.Errorf("no read through %s succeeded in the second after the failover", n.name)
		}
	}

	rs.mu.Lock()
	failures := slices.Clone(rs.failures)
	okCounts := map[string]int{}
	for n, c := range rs.ok {
		okCounts[n.name] = c
	}
	rs.mu.Unlock()
	var refusedDraining, refusedAfterExit int
	for _, f := range failures {
		if f.node != leader {
			t.Errorf("read through follower %s failed at +%v: %s status %d err %v", f.node.name, f.at.Sub(sigAt).Round(time.Millisecond), f.what, f.status, f.err)
			continue
		}
		switch {
		case f.at.Before(sigAt):
			t.Errorf("read through the leader failed before SIGTERM: %s status %d err %v", f.what, f.status, f.err)
		case f.status != 0 || !errors.Is(f.err, syscall.ECONNREFUSED):
			t.Errorf("read through the stopping leader at +%v did not end with a refused connection: %s status %d err %v",
				f.at.Sub(sigAt).Round(time.Millisecond), f.what, f.status, f.err)
		case f.at.Before(exitedAt):
			refusedDraining++
		default:
			refusedAfterExit++
		}
	}
	t.Logf("successful reads per replica: %v; through the stopped leader: %d refused while it drained, %d after it exited", okCounts, refusedDraining, refusedAfterExit)

	log := tailOfFile(leader.proc.logPath, 1<<20)
	released, stopped := strings.Index(log, "leader lock released"), strings.Index(log, `"msg":"stopped"`)
	if released < 0 || stopped < 0 || released > stopped {
		t.Errorf("the leader's log does not say it released the lock before it stopped (released at %d, stopped at %d)", released, stopped)
	}
}

// eventuallyUpload uploads a small file through n until it gets 201, at most d; the
// answers before must be 502 PROXY_ERROR or 503 LEADER_UNKNOWN.
func (s *replicaSet) eventuallyUpload(n *replicaNode, name string, d time.Duration) procFileMeta {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), replQuick)
		status, body, err := n.fx.upload(ctx, s.token, uploadSpec{filename: name, contentType: "text/plain", content: strings.NewReader("eventually"), size: 10})
		cancel()
		switch {
		case err != nil:
			s.t.Fatalf("upload through %s: %v", n.name, err)
		case status == http.StatusCreated:
			var m procFileMeta
			if err := json.Unmarshal(body, &m); err != nil {
				s.t.Fatalf("upload through %s: body %s", n.name, body)
			}
			return m
		case (status == http.StatusBadGateway && replErrorCode(body) == "PROXY_ERROR") || (status == http.StatusServiceUnavailable && replErrorCode(body) == "LEADER_UNKNOWN"):
		default:
			s.t.Fatalf("upload through %s: status %d body %s", n.name, status, body)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("uploads through %s still refused %v later: %d %s", n.name, d, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- 6. background work ----

// TestReplicaBackgroundWorkOnlyOnLeader: with GC and reconciliation every second, only
// the leader runs them (metrics and logs); the file a follower deleted is purged by the
// leader's GC and disappears from the follower.
//
// The file to purge is uploaded to the leader and the test waits until the follower
// lists it, i.e. until a refresh pass of the follower saw it on disk: a file the
// follower only re-read on its own (forwarded upload, read-through) and that is purged
// before such a pass is never dropped (TestReplicaFollowerForgetsNoPurgedFile).
func TestReplicaBackgroundWorkOnlyOnLeader(t *testing.T) {
	s := newReplicaSet(t, 2, map[string]string{"SE_GC_INTERVAL": "1s", "SE_RECONCILE_INTERVAL": "1s"})
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	f := replicasExcept(s.nodes, leader)[0]

	kept := s.uploadVia(f, "kept.bin", 81, 20<<10, nil, nil)
	gone := s.uploadVia(leader, "gone.bin", 82, 20<<10, nil, nil)
	if !s.waitListed(f, gone.FileID, replRefresh+replPropagationMargin) {
		t.Fatalf("follower %s does not list %s %v after its upload", f.name, gone.FileID, replRefresh+replPropagationMargin)
	}
	status, body, err := f.do(10*time.Second, http.MethodDelete, "/api/v1/files/"+gone.FileID, s.token, nil)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("DELETE through follower: status %d err %v body %s", status, err, body)
	}
	var last map[string]float64
	worked := waitFor(15*time.Second, func() bool {
		m, err := leader.scrape()
		last = m
		return err == nil && m["se_gc_runs_total"] >= 2 && m["se_reconcile_runs_total"] >= 2 && m["se_gc_files_deleted_total"] >= 1
	})
	if !worked {
		t.Fatalf("leader metrics after 15s: gc runs %v, reconcile runs %v, gc files deleted %v",
			last["se_gc_runs_total"], last["se_reconcile_runs_total"], last["se_gc_files_deleted_total"])
	}
	fm := f.mustScrape()
	for _, name := range []string{"se_gc_runs_total", "se_reconcile_runs_total", "se_gc_files_deleted_total"} {
		if v, ok := fm[name]; ok && v != 0 {
			t.Errorf("follower %s: %s = %v, want absent or 0", f.name, name, v)
		}
	}
	t.Logf("leader %s: %v GC runs, %v reconciliations; follower %s: %v, %v",
		leader.name, last["se_gc_runs_total"], last["se_reconcile_runs_total"], f.name, fm["se_gc_runs_total"], fm["se_reconcile_runs_total"])

	if pairs := checkPairs(t, s.base.dataDir); pairs != 1 {
		t.Errorf("%d blob+sidecar pairs on disk after GC, want 1 (the kept file)", pairs)
	}
	propagation := replRefresh + replPropagationMargin
	if failing := waitAllReplicas(propagation, s.nodes, func(n *replicaNode) bool {
		status, _, err := n.metadata(gone.FileID)
		return err == nil && status == http.StatusNotFound
	}); len(failing) > 0 {
		t.Errorf("the purged file is still known to %v %v after the purge", failing, propagation)
	}
	f.fx.checkDownload(s.token, kept)

	leaderLog, followerLog := tailOfFile(leader.proc.logPath, 4<<20), tailOfFile(f.proc.logPath, 4<<20)
	for _, msg := range []string{"GC run finished", "reconciliation finished"} {
		if !strings.Contains(leaderLog, msg) {
			t.Errorf("the leader's log lacks %q", msg)
		}
		if strings.Contains(followerLog, msg) {
			t.Errorf("the follower's log has %q", msg)
		}
	}
}

// ---- 7. a follower without a leader ----

// TestReplicaNoLeader: the test process holds the leader lock itself. With no
// .leader.info the replica answers writes 503 LEADER_UNKNOWN at once; with a
// .leader.info naming a dead port, 502 PROXY_ERROR at once; reads work all along.
// Once the test lets go of the lock, the replica leads and takes writes.
func TestReplicaNoLeader(t *testing.T) {
	s := newReplicaSet(t, 1, nil)
	n := s.nodes[0]
	if err := os.MkdirAll(s.base.dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(s.base.dataDir, ".leader.lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	s.startReady(n)
	// Give the replica two election attempts so "no leader" is its settled state.
	time.Sleep(2 * replRetry)
	info, err := n.info(5 * time.Second)
	if err != nil || info.Role != "follower" || info.ReplicaMode != "replicated" || fmt.Sprint(info.AllowedOperations) != "[download list]" {
		t.Errorf("info of a follower without a leader: %+v err %v, want follower with [download list]", info, err)
	}
	s.expectWritesRefused(n, http.StatusServiceUnavailable, "LEADER_UNKNOWN")
	s.expectReads(n)

	dead := freePort(t)
	doc := fmt.Sprintf(`{"address":"127.0.0.1:%d","pid":1,"since":%q}`+"\n", dead, time.Now().UTC().Format(time.RFC3339))
	writeFileViaRename(t, filepath.Join(s.base.dataDir, ".leader.info"), []byte(doc))
	learnt := waitFor(replRetry+2*time.Second, func() bool {
		info, err := n.info(time.Second)
		return err == nil && slices.Contains(info.AllowedOperations, "upload")
	})
	if !learnt {
		t.Fatalf("the replica did not pick up .leader.info within %v", replRetry+2*time.Second)
	}
	s.expectWritesRefused(n, http.StatusBadGateway, "PROXY_ERROR")
	s.expectReads(n)

	releasedAt := time.Now()
	lock.Close()
	bound := replRetry + time.Second + replFailoverMargin
	got, seenAt := pollLeader([]*replicaNode{n}, releasedAt.Add(bound+5*time.Second))
	if got == nil {
		t.Fatalf("the replica did not lead within %v of the lock's release", bound+5*time.Second)
	}
	t.Logf("lock released by the test: %s leads %v later", n.name, seenAt.Sub(releasedAt).Round(time.Millisecond))
	if seenAt.Sub(releasedAt) > bound {
		t.Errorf("took the free lock after %v, want ≤ %v", seenAt.Sub(releasedAt), bound)
	}
	m := s.eventuallyUpload(n, "led.bin", 5*time.Second)
	n.fx.checkDownload(s.token, m)
	if addr, pid, err := s.leaderInfoOnDisk(); err != nil || addr != n.addr() || pid != n.proc.pid {
		t.Errorf(".leader.info names %s pid %d (err %v), want %s pid %d", addr, pid, err, n.addr(), n.proc.pid)
	}
}

// expectWritesRefused sends every kind of write through n and wants status/code for
// each, each answered within replQuick.
func (s *replicaSet) expectWritesRefused(n *replicaNode, status int, code string) {
	s.t.Helper()
	id := uuid.NewString()
	writes := []struct {
		name, method, path string
		body               []byte
	}{
		{"PATCH", http.MethodPatch, "/api/v1/files/" + id, []byte(`{"description":"x"}`)},
		{"DELETE", http.MethodDelete, "/api/v1/files/" + id, nil},
		{"mode transition", http.MethodPost, "/api/v1/mode/transition", []byte(`{"target_mode":"ro"}`)},
		{"reconcile", http.MethodPost, "/api/v1/maintenance/reconcile", nil},
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), replQuick)
	got, body, err := n.fx.upload(ctx, s.token, uploadSpec{filename: "refused.bin", contentType: "application/octet-stream", content: newPatternReader(1, 200<<10), size: 200 << 10})
	cancel()
	took := time.Since(began)
	if err != nil || got != status || replErrorCode(body) != code {
		s.t.Errorf("upload: status %d err %v body %s after %v, want %d %s", got, err, body, took, status, code)
	}
	s.t.Logf("upload answered %d %s in %v", got, replErrorCode(body), took.Round(time.Millisecond))
	for _, w := range writes {
		began := time.Now()
		got, body, err := n.do(replQuick, w.method, w.path, s.token, w.body)
		if err != nil || got != status || replErrorCode(body) != code {
			s.t.Errorf("%s: status %d err %v body %s after %v, want %d %s", w.name, got, err, body, time.Since(began), status, code)
		}
	}
}

// expectReads wants list, metadata of an unknown id (404) and info to work on n.
func (s *replicaSet) expectReads(n *replicaNode) {
	s.t.Helper()
	var page procFileList
	if status, err := n.fx.getJSON("/api/v1/files", s.token, &page); err != nil || status != http.StatusOK || page.Total != 0 {
		s.t.Errorf("list: status %d err %v total %d, want 200 with 0 files", status, err, page.Total)
	}
	if status, _, err := n.metadata(uuid.NewString()); err != nil || status != http.StatusNotFound {
		s.t.Errorf("metadata of an unknown id: status %d err %v, want 404", status, err)
	}
}

// ---- 8. standalone ----

// TestReplicaStandaloneNoLockFiles: a standalone SE with uploads never creates
// .leader.lock or .leader.info, reports replica_mode and role standalone, and its
// se_replica_role says so.
func TestReplicaStandaloneNoLockFiles(t *testing.T) {
	f := newSEFixture(t)
	p := f.startReady()
	token := f.token("files:read", "files:write")
	f.uploadPattern(token, "one.bin", 91, 10<<10)
	f.uploadPattern(token, "two.bin", 92, 0)
	st := &replicaNode{set: &replicaSet{t: t, base: f, token: token}, name: "standalone", fx: f, proc: p}
	info, err := st.info(5 * time.Second)
	if err != nil || info.ReplicaMode != "standalone" || info.Role != "standalone" {
		t.Errorf("info: %+v err %v, want replica_mode and role standalone", info, err)
	}
	m := st.mustScrape()
	for role, want := range map[string]float64{"standalone": 1, "follower": 0, "leader": 0} {
		if v, ok := m[`se_replica_role{role="`+role+`"}`]; !ok || v != want {
			t.Errorf(`se_replica_role{role=%q} = %v (present %v), want %v`, role, v, ok, want)
		}
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.waitExit(15*time.Second) || p.state.ExitCode() != 0 {
		t.Fatalf("standalone SE did not exit 0 within 15s of SIGTERM: %v", p.state)
	}
	for _, name := range []string{".leader.lock", ".leader.info"} {
		if _, err := os.Stat(filepath.Join(f.dataDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("standalone run left %s (stat err %v)", name, err)
		}
	}
	c, err := censusDataDir(f.dataDir)
	if err != nil || len(c.problems) > 0 || len(c.sidecars) != 2 {
		t.Errorf("standalone data dir: err %v, problems %v, %d sidecars", err, c.problems, len(c.sidecars))
	}
}

// trickleReader hands out inner in chunks of chunk bytes, one every period (a slow
// link that keeps sending), until inner ends or Close.
type trickleReader struct {
	inner     io.Reader
	chunk     int
	period    time.Duration
	closed    chan struct{}
	closeOnce sync.Once
}

func newTrickleReader(inner io.Reader, chunk int, period time.Duration) *trickleReader {
	return &trickleReader{inner: inner, chunk: chunk, period: period, closed: make(chan struct{})}
}

func (r *trickleReader) Read(p []byte) (int, error) {
	select {
	case <-r.closed:
		return 0, errors.New("trickling upload abandoned")
	case <-time.After(r.period):
	}
	return r.inner.Read(p[:min(len(p), r.chunk)])
}

func (r *trickleReader) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}

// asyncAnswer is what a client running on its own goroutine got, and when.
type asyncAnswer struct {
	status int
	body   []byte
	err    error
	at     time.Time
}

// uploadAsync sends a chunked upload of content through n on its own goroutine (60 s
// deadline); the answer arrives on the channel.
func (s *replicaSet) uploadAsync(n *replicaNode, name string, content io.Reader) <-chan asyncAnswer {
	ch := make(chan asyncAnswer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		status, body, err := n.fx.upload(ctx, s.token, uploadSpec{filename: name, contentType: "application/octet-stream", content: content, size: -1})
		ch <- asyncAnswer{status, body, err, time.Now()}
	}()
	return ch
}

// awaitAnswer returns the answer if it arrived by deadline.
func awaitAnswer(ch <-chan asyncAnswer, deadline time.Time) (asyncAnswer, bool) {
	select {
	case a := <-ch:
		return a, !a.at.After(deadline)
	default:
	}
	select {
	case a := <-ch:
		return a, !a.at.After(deadline)
	case <-time.After(time.Until(deadline)):
		return asyncAnswer{}, false
	}
}

// ---- 9. a forwarded upload whose client pauses when the leader dies ----

// TestReplicaKill9StalledForwardAnswered: a client streams a chunked upload through a
// follower and pauses half way (a WAN client between two bursts); the leader gets
// kill -9 while the follower's forward waits for the client's next bytes. CONTRACT §9
// / issue 4: "leader unreachable → 502 PROXY_ERROR, never a hang". The follower must
// answer 502 PROXY_ERROR within replQuick while the client still holds its body open.
func TestReplicaKill9StalledForwardAnswered(t *testing.T) {
	s := newReplicaSet(t, 2, nil)
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	f := replicasExcept(s.nodes, leader)[0]

	stall := newStallingReader(newPatternReader(101, 8<<20), 4<<20)
	defer stall.Close()
	answered := s.uploadAsync(f, "paused.bin", stall)
	select {
	case <-stall.halfway:
	case <-time.After(15 * time.Second):
		t.Fatal("the paused upload never got half way")
	}
	// Wait until the leader has written everything the client sent: the forward is
	// then parked reading the client's body, not writing to the leader.
	var last int64 = -1
	settled := waitFor(10*time.Second, func() bool {
		size := tempFileBytes(s.base.dataDir)
		done := size > 0 && size == last
		last = size
		time.Sleep(100 * time.Millisecond)
		return done
	})
	if !settled {
		t.Fatalf("the leader's temp file of the paused upload never settled (last %d bytes)", last)
	}

	killedAt := time.Now()
	leader.fx.killHard(leader.proc)
	a, ok := awaitAnswer(answered, killedAt.Add(replQuick))
	if !ok {
		stall.Close() // what a client would do after its own timeout; shows what it then gets
		late, _ := awaitAnswer(answered, time.Now().Add(10*time.Second))
		t.Fatalf("the paused upload through follower %s had no answer %v after the leader died (its temp file held %d bytes); "+
			"once the client gave up and closed its body it got status %d %s err %v after %v",
			f.name, replQuick, last, late.status, replErrorCode(late.body), late.err, late.at.Sub(killedAt).Round(time.Millisecond))
	}
	if a.err != nil || a.status != http.StatusBadGateway || replErrorCode(a.body) != "PROXY_ERROR" {
		t.Errorf("the paused upload: status %d err %v body %s, want 502 PROXY_ERROR", a.status, a.err, a.body)
	}
	t.Logf("the paused upload got %d %s %v after the kill", a.status, replErrorCode(a.body), a.at.Sub(killedAt).Round(time.Millisecond))
}

// tempFileBytes sums the sizes of the upload temp files in dataDir.
func tempFileBytes(dataDir string) int64 {
	c, err := censusDataDir(dataDir)
	if err != nil {
		return 0
	}
	var n int64
	for _, rel := range c.temps {
		if st, err := os.Stat(filepath.Join(dataDir, rel)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// listedBy reports whether n's list (which never reads through to disk) has id.
func (s *replicaSet) listedBy(n *replicaNode, id string) bool {
	var page procFileList
	status, err := n.fx.getJSON("/api/v1/files?limit=1000", s.token, &page)
	if err != nil || status != http.StatusOK {
		return false
	}
	return slices.ContainsFunc(page.Items, func(m procFileMeta) bool { return m.FileID == id })
}

// waitListed polls n's list until it has id, at most d.
func (s *replicaSet) waitListed(n *replicaNode, id string, d time.Duration) bool {
	return waitFor(d, func() bool { return s.listedBy(n, id) })
}

// ---- 10. a purged file a follower learnt of between two refresh passes ----

// TestReplicaFollowerForgetsNoPurgedFile: a follower publishes a file's sidecar at once
// when it forwarded the upload (or read it through on an index miss), but its refresh
// passes drop only files that an earlier pass saw on disk. A file uploaded through the
// follower, deleted on the leader and purged by GC before the follower's next pass over
// that shard directory therefore stays in the follower's index for good. Wanted
// (CONTRACT §9, §4): after two more refresh passes the follower agrees with the leader:
// metadata 404, not listed, download 404, used_bytes without it.
func TestReplicaFollowerForgetsNoPurgedFile(t *testing.T) {
	const refresh = 4 * time.Second
	s := newReplicaSet(t, 2, map[string]string{"SE_GC_INTERVAL": "1s", "SE_INDEX_REFRESH_INTERVAL": refresh.String()})
	s.startReady(s.nodes...)
	leader := s.waitStable(10*time.Second, s.nodes...)
	f := replicasExcept(s.nodes, leader)[0]

	// A refresh pass of f is observable: a file uploaded to the leader enters f's list
	// only through one. Right after a pass, upload through f, delete on the leader and
	// let GC purge, all well before f's next pass.
	var gone procFileMeta
	arranged := false
	for attempt := 0; attempt < 3 && !arranged; attempt++ {
		probe := s.uploadVia(leader, fmt.Sprintf("probe-%d.bin", attempt), uint64(110+attempt), 1<<10, nil, nil)
		if !s.waitListed(f, probe.FileID, refresh+2*time.Second) {
			t.Fatalf("follower %s never listed %s", f.name, probe.FileID)
		}
		passAt := time.Now()
		gone = s.uploadVia(f, fmt.Sprintf("gone-%d.bin", attempt), uint64(120+attempt), 10<<10, nil, nil)
		status, body, err := leader.do(10*time.Second, http.MethodDelete, "/api/v1/files/"+gone.FileID, s.token, nil)
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("DELETE on the leader: status %d err %v body %s", status, err, body)
		}
		purged := waitFor(3*time.Second, func() bool {
			blobs, sidecars := censusFilesOf(replCensus(t, s.base.dataDir), gone.FileID)
			return blobs == 0 && sidecars == 0
		})
		if !purged {
			t.Fatalf("GC did not purge %s within 3s", gone.FileID)
		}
		arranged = time.Since(passAt) < refresh-500*time.Millisecond
		t.Logf("attempt %d: uploaded through %s, deleted and purged %v after a refresh pass", attempt, f.name, time.Since(passAt).Round(time.Millisecond))
	}
	if !arranged {
		t.Fatalf("could not fit upload, delete and purge between two refresh passes")
	}
	time.Sleep(2*refresh + time.Second)

	if status, _, err := leader.metadata(gone.FileID); err != nil || status != http.StatusNotFound {
		t.Fatalf("leader: metadata of the purged file: status %d err %v, want 404", status, err)
	}
	status, got, err := f.metadata(gone.FileID)
	if err != nil || status != http.StatusNotFound {
		t.Errorf("follower %s, two refresh passes after the purge: metadata status %d (status %q) err %v, want 404", f.name, status, got.Status, err)
	}
	if s.listedBy(f, gone.FileID) {
		t.Errorf("follower %s still lists the purged file", f.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if dl, err := f.fx.download(ctx, s.token, gone.FileID); err != nil || dl.status != http.StatusNotFound {
		t.Errorf("follower %s: download of the purged file: status %d err %v, want 404", f.name, dl.status, err)
	}
	if fu, lu := f.fx.usedBytes(), leader.fx.usedBytes(); fu != lu {
		t.Errorf("used_bytes: follower %d, leader %d", fu, lu)
	}
}
