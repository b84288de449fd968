// mode.go — the operating mode state machine (CONTRACT §2) and its persistence.
//
// On disk: {SE_DATA_DIR}/mode.json, one line:
//
//	{"mode":"rw","updated_at":"2026-12-03T10:00:00Z","updated_by":"admin-1"}
//
// Invariants:
//   - mode.json is written with writeFileAtomic + directory fsync before a transition is
//     acknowledged; SE_MODE only seeds a data directory that has none.
//   - Writers (upload commit, PATCH, DELETE) hold modeState.mu for reading across their
//     final check-and-apply, and a transition holds it for writing, so once a transition
//     to ro/ar returns, no write that the old mode allowed can still land.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type seMode string

const (
	modeEdit seMode = "edit"
	modeRW   seMode = "rw"
	modeRO   seMode = "ro"
	modeAR   seMode = "ar"
)

const modeFileName = "mode.json"

// operation is what a mode allows (CONTRACT §2 table); the names are the ones
// /api/v1/info reports in allowed_operations.
type operation string

const (
	opUpload   operation = "upload"
	opDownload operation = "download"
	opUpdate   operation = "update"
	opDelete   operation = "delete"
	opList     operation = "list"
)

var allOperations = []operation{opUpload, opDownload, opUpdate, opDelete, opList}

func parseMode(s string) (seMode, bool) {
	switch m := seMode(s); m {
	case modeEdit, modeRW, modeRO, modeAR:
		return m, true
	}
	return "", false
}

// allows is the table of CONTRACT §2.
func (m seMode) allows(op operation) bool {
	switch op {
	case opList:
		return true
	case opDownload:
		return m != modeAR
	case opUpload, opUpdate:
		return m == modeEdit || m == modeRW
	case opDelete:
		return m == modeEdit
	}
	return false
}

var (
	errInvalidTransition    = errors.New("invalid transition")
	errConfirmationRequired = errors.New("confirmation required")
	errInvalidTargetMode    = errors.New("target_mode must be one of rw, ro, ar")
)

// checkTransition is the transition matrix of CONTRACT §2.
func checkTransition(from, to seMode, confirm bool) error {
	switch to {
	case modeRW, modeRO, modeAR:
	case modeEdit:
		return errInvalidTransition
	default:
		return errInvalidTargetMode
	}
	switch {
	case from == modeRW && to == modeRO, from == modeRO && to == modeAR:
		return nil
	case from == modeRO && to == modeRW:
		if !confirm {
			return errConfirmationRequired
		}
		return nil
	}
	return errInvalidTransition
}

type modeDoc struct {
	Mode      seMode    `json:"mode"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

type modeState struct {
	dataDir  string
	mu       sync.RWMutex // see the invariants at the top of the file
	doc      modeDoc
	unstored bool // seeded from SE_MODE by a reader that may not write mode.json
}

// loadMode reads mode.json, or seeds it from seed when the data directory has none
// (writing it only when persistSeed: a follower never writes). It reports whether the
// stored mode overrides a different seed.
func loadMode(dataDir string, seed seMode, now time.Time, persistSeed bool) (*modeState, bool, error) {
	ms := &modeState{dataDir: dataDir}
	doc, err := readModeFile(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		ms.doc = modeDoc{Mode: seed, UpdatedAt: now.UTC(), UpdatedBy: "SE_MODE"}
		if !persistSeed {
			ms.unstored = true
			return ms, false, nil
		}
		if err := ms.persist(ms.doc); err != nil {
			return nil, false, err
		}
		return ms, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	ms.doc = doc
	return ms, doc.Mode != seed, nil
}

func readModeFile(dataDir string) (modeDoc, error) {
	var doc modeDoc
	f, err := os.Open(filepath.Join(dataDir, modeFileName))
	if err != nil {
		return doc, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return doc, fmt.Errorf("read %s: %w", modeFileName, err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, fmt.Errorf("decode %s: %w", modeFileName, err)
	}
	if _, ok := parseMode(string(doc.Mode)); !ok {
		return doc, fmt.Errorf("%s holds unknown mode %q", modeFileName, doc.Mode)
	}
	return doc, nil
}

func (ms *modeState) persist(doc modeDoc) error {
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode mode: %w", err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(ms.dataDir, modeFileName, tempPrefix+modeFileName+"."+randomHex(8), data); err != nil {
		return fmt.Errorf("write %s: %w", modeFileName, err)
	}
	return syncDir(ms.dataDir)
}

func (ms *modeState) current() seMode {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.doc.Mode
}

// transition applies one transition of the matrix and persists it.
func (ms *modeState) transition(to seMode, confirm bool, by string, now time.Time) (from seMode, at time.Time, err error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	from = ms.doc.Mode
	if err := checkTransition(from, to, confirm); err != nil {
		return from, time.Time{}, err
	}
	doc := modeDoc{Mode: to, UpdatedAt: now.UTC(), UpdatedBy: by}
	if err := ms.persist(doc); err != nil {
		return from, time.Time{}, err
	}
	ms.doc = doc
	return from, doc.UpdatedAt, nil
}

// reload re-reads mode.json (followers in replicated mode track the leader's changes).
// A missing file keeps the seeded mode.
func (ms *modeState) reload() error {
	doc, err := readModeFile(ms.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ms.mu.Lock()
	ms.doc, ms.unstored = doc, false
	ms.mu.Unlock()
	return nil
}

// storeSeed writes a seeded mode that no writer has stored yet (a new leader).
func (ms *modeState) storeSeed() error {
	if err := ms.reload(); err != nil {
		return err
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if !ms.unstored {
		return nil
	}
	if err := ms.persist(ms.doc); err != nil {
		return err
	}
	ms.unstored = false
	return nil
}

// withAllowed runs fn while the mode cannot change, if the current mode allows op.
func (ms *modeState) withAllowed(op operation, fn func(seMode) error) error {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if !ms.doc.Mode.allows(op) {
		return errModeNotAllowed
	}
	return fn(ms.doc.Mode)
}
