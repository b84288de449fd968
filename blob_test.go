package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestStorageNameIsSafeAndDerivedFromID(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	at := time.Date(2026, 12, 3, 10, 4, 5, 0, time.UTC)
	cases := map[[2]string]string{
		{"report.PDF", "alice"}:               "report_alice_20261203T100405Z_" + id.String() + ".pdf",
		{"../../etc/passwd", "bob"}:           "passwd_bob_20261203T100405Z_" + id.String(),
		{`C:\Users\x\evil.exe`, "a/b"}:        "evil_a-b_20261203T100405Z_" + id.String() + ".exe",
		{"", ""}:                              "file_user_20261203T100405Z_" + id.String(),
		{".bashrc", "u"}:                      "bashrc_u_20261203T100405Z_" + id.String(),
		{"отчёт.tar.gz", "é"}:                 "tar_user_20261203T100405Z_" + id.String() + ".gz",
		{"a" + strings.Repeat("b", 200), "u"}: "a" + strings.Repeat("b", 63) + "_u_20261203T100405Z_" + id.String(),
		{"x.e/x", "u"}:                        "x_u_20261203T100405Z_" + id.String(),
		{"data.attr.json", "u"}:               "data-attr_u_20261203T100405Z_" + id.String() + ".json",
	}
	for in, want := range cases {
		got := storageName(in[0], in[1], at, id)
		if got != want {
			t.Errorf("storageName(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
		if !validStorageName(got, id) || validStorageName(got, uuid.New()) {
			t.Errorf("%q: validStorageName disagrees with storageName", got)
		}
	}
}

func TestValidStorageNameRejects(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	for _, name := range []string{"", "..", "../x_" + id.String(), "a/b_" + id.String(), ".x_" + id.String(),
		"x_" + id.String() + ".attr.json", "x_" + id.String() + ".", "x_" + id.String() + "/", id.String(),
		"x_" + id.String() + "x", "x_" + strings.ToUpper(id.String()), "x y_" + id.String(), "x_" + id.String() + ".ÄÖ"} {
		if validStorageName(name, id) {
			t.Errorf("validStorageName(%q) = true", name)
		}
	}
}

func FuzzStorageName(f *testing.F) {
	f.Add("report.pdf", "alice")
	f.Add("../../x", "a/b")
	f.Add("\x00\xff.\u202e", "..")
	f.Fuzz(func(t *testing.T, original, user string) {
		id := uuid.New()
		name := storageName(original, user, time.Now(), id)
		if !validStorageName(name, id) {
			t.Fatalf("storageName(%q,%q) = %q is not valid", original, user, name)
		}
		if filepath.Base(name) != name || strings.HasPrefix(name, ".") {
			t.Fatalf("unsafe name %q", name)
		}
	})
}

func TestShardLayout(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	if got := shardDir("/data", id); got != "/data/6b/a7" {
		t.Fatalf("shardDir = %s", got)
	}
}

func TestWriteFileAtomicLeavesNoTempOnFailure(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileAtomic(dir, "a", ".tmp.a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	// the destination is a directory: the rename fails and the temp file must go
	os.Mkdir(filepath.Join(dir, "d"), 0o750)
	os.WriteFile(filepath.Join(dir, "d", "x"), nil, 0o640)
	if err := writeFileAtomic(dir, "d", ".tmp.d", []byte("two")); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "a,d" {
		t.Fatalf("dir holds %v", names)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a")); string(data) != "one" {
		t.Fatal("content")
	}
}

// TestVerifyingReaderAcrossHashBatches: a blob larger than one hash batch is verified
// as a whole (the digest comes from the hashing goroutine), a wrong checksum withholds
// the last chunk, and a seek away from the start stops verification.
func TestVerifyingReaderAcrossHashBatches(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), (3*hashBatch)/10+7)
	sum := sha256.Sum256(content)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, content, 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(len(content))
	read := func(v *verifyingReader) ([]byte, error) {
		defer v.close()
		var out bytes.Buffer
		_, err := io.CopyBuffer(&out, io.LimitReader(v, size), make([]byte, 32<<10))
		return out.Bytes(), err
	}

	mismatches := 0
	got, err := read(newVerifyingReader(f, size, hex.EncodeToString(sum[:]), func() { mismatches++ }))
	if err != nil || !bytes.Equal(got, content) || mismatches != 0 {
		t.Fatalf("good blob: %d bytes, %v, %d mismatches", len(got), err, mismatches)
	}

	got, err = read(newVerifyingReader(f, size, strings.Repeat("0", 64), func() { mismatches++ }))
	if !errors.Is(err, errChecksumMismatch) || int64(len(got)) >= size || mismatches != 1 {
		t.Fatalf("wrong checksum: %d of %d bytes, %v, %d mismatches", len(got), size, err, mismatches)
	}

	v := newVerifyingReader(f, size, strings.Repeat("0", 64), func() { mismatches++ })
	if _, err := v.Seek(size/2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(io.LimitReader(v, size))
	v.close()
	if err != nil || !bytes.Equal(tail, content[size/2:]) || mismatches != 1 {
		t.Fatalf("ranged read: %d bytes, %v, %d mismatches", len(tail), err, mismatches)
	}
}
