package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// newTestRecord builds a minimal valid record (index tests use only these fields).
func newTestRecord(id uuid.UUID, at time.Time, st fileStatus, size int64) *fileRecord {
	m := FileMetadata{
		FileID: id.String(), OriginalFilename: "f.bin", ContentType: "application/octet-stream",
		Size: size, Checksum: strings.Repeat("0", 64), UploadedBy: "test", UploadedAt: at,
		Status: st.String(), RetentionPolicy: retentionPermanent,
	}
	return &fileRecord{meta: m, fileID: id, st: st, storageName: storageName("f.bin", "test", at, id)}
}

func validSidecarRecord(t *testing.T) *fileRecord {
	t.Helper()
	id := uuid.New()
	at := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.UTC)
	d := "a description"
	ttl := 30
	exp := at.Add(30 * 24 * time.Hour)
	m := FileMetadata{
		FileID: id.String(), OriginalFilename: "Отчёт 2026.pdf", ContentType: "application/pdf",
		Size: 42, Checksum: strings.Repeat("ab", 32), UploadedBy: "alice", UploadedAt: at,
		Description: &d, Tags: []string{"x", "y"}, Status: "active", RetentionPolicy: retentionTemporary,
		TTLDays: &ttl, ExpiresAt: &exp,
	}
	rec, err := newFileRecord(m, storageName(m.OriginalFilename, m.UploadedBy, at, id))
	if err != nil {
		t.Fatalf("newFileRecord: %v", err)
	}
	return rec
}

func TestSidecarRoundTrip(t *testing.T) {
	rec := validSidecarRecord(t)
	data, err := encodeSidecar(rec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), "\n") != 1 || !strings.HasSuffix(string(data), "\n") {
		t.Fatalf("sidecar must be exactly one line: %q", data)
	}
	back, err := decodeSidecar(data)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	a, _ := encodeSidecar(back)
	if string(a) != string(data) {
		t.Fatalf("round trip changed the sidecar:\n%s\n%s", data, a)
	}
	if !back.uploadedAt().Equal(rec.uploadedAt()) || back.id() != rec.id() || back.storageName != rec.storageName {
		t.Fatal("round trip lost identity fields")
	}
}

func TestDecodeSidecarRejects(t *testing.T) {
	rec := validSidecarRecord(t)
	good, _ := encodeSidecar(rec)
	other := uuid.New()
	cases := map[string]string{
		"traversal in storage_name": strings.Replace(string(good), rec.storageName, "../../etc/passwd_"+rec.meta.FileID, 1),
		"slash in storage_name":     strings.Replace(string(good), rec.storageName, "a/b_"+rec.meta.FileID, 1),
		"name of another id":        strings.Replace(string(good), `"storage_name":"`+rec.storageName, `"storage_name":"x_`+other.String(), 1),
		"uppercase file_id":         strings.Replace(string(good), rec.meta.FileID, strings.ToUpper(rec.meta.FileID), 1),
		"bad status":                strings.Replace(string(good), `"status":"active"`, `"status":"gone"`, 1),
		"bad checksum":              strings.Replace(string(good), strings.Repeat("ab", 32), "xyz", 1),
		"unknown field":             strings.Replace(string(good), `{"file_id"`, `{"evil":1,"file_id"`, 1),
		"trailing data":             string(good) + "{}",
		"not json":                  "hello",
		"negative size":             strings.Replace(string(good), `"size":42`, `"size":-1`, 1),
		"permanent with ttl":        strings.Replace(string(good), `"retention_policy":"temporary"`, `"retention_policy":"permanent"`, 1),
		"too many tags":             strings.Replace(string(good), `"tags":["x","y"]`, `"tags":[`+strings.Repeat(`"t",`, 100)+`"t"]`, 1),
	}
	for name, data := range cases {
		if data == string(good) {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := decodeSidecar([]byte(data)); err == nil {
			t.Errorf("%s: decodeSidecar accepted %q", name, data)
		}
	}
}

func FuzzDecodeSidecar(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"file_id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","storage_name":"../x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeSidecar(data)
		if err != nil {
			return
		}
		// Whatever is accepted must confine its blob to its own shard directory.
		if !validStorageName(r.storageName, r.id()) || strings.ContainsAny(r.storageName, `/\`) || strings.HasPrefix(r.storageName, ".") {
			t.Fatalf("accepted unsafe storage name %q", r.storageName)
		}
	})
}
