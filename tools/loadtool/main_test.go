package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseFlagsDefaultsAndQuick(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.N != 100_000 || o.NSmall != 10_000 || o.BigSize != 1<<30 || o.SmallSize != 4096 || o.Clients != 16 {
		t.Fatalf("defaults %+v", o)
	}
	q, err := parseFlags([]string{"-quick", "-n", "5000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if q.N != 5000 || q.BigSize != 64<<20 || q.Duration != time.Second || q.Rounds != 1 {
		t.Fatalf("-quick with -n 5000: %+v", q)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "0"}, {"-clients", "0"}, {"-duration", "0s"}, {"-url", "https://x"}, {"extra"}, {"-nope"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestRepoRootFindsSEModule(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module artstore/storage-element\n\ngo 1.26.0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, "tools", "x")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module artstore/storage-element/tools/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := repoRoot(root); err != nil || got != root {
		t.Fatalf("repoRoot(%s) = %s, %v", root, got, err)
	}
	if _, err := repoRoot(other); err == nil {
		t.Fatal("a tool's module accepted as the SE")
	}
	t.Chdir(other)
	if got, err := repoRoot(""); err != nil || got != root {
		t.Fatalf("repoRoot from %s = %s, %v; want %s", other, got, err, root)
	}
}
