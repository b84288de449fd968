package main

import (
	"testing"
	"time"
)

func TestModeAllowsTable(t *testing.T) {
	// CONTRACT §2, row by row: upload, download, update, delete, list
	table := map[seMode][5]bool{
		modeEdit: {true, true, true, true, true},
		modeRW:   {true, true, true, false, true},
		modeRO:   {false, true, false, false, true},
		modeAR:   {false, false, false, false, true},
	}
	for mode, row := range table {
		for i, op := range allOperations {
			if mode.allows(op) != row[i] {
				t.Errorf("%s allows %s = %v, want %v", mode, op, mode.allows(op), row[i])
			}
		}
	}
}

func TestLoadModeSeedsOnceAndPersists(t *testing.T) {
	dir := t.TempDir()
	ms, differs, err := loadMode(dir, modeRW, time.Now(), true)
	if err != nil || differs || ms.current() != modeRW {
		t.Fatalf("seed: %v %v %v", ms, differs, err)
	}
	if _, _, err := ms.transition(modeRO, false, "op", time.Now()); err != nil {
		t.Fatal(err)
	}
	again, differs, err := loadMode(dir, modeEdit, time.Now(), true)
	if err != nil || !differs || again.current() != modeRO {
		t.Fatalf("reload: %v %v %v", again.current(), differs, err)
	}
	doc, _ := readModeFile(dir)
	if doc.UpdatedBy != "op" || doc.UpdatedAt.IsZero() {
		t.Fatalf("mode.json %+v", doc)
	}
}
