package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fastPathRecords are sidecars as encodeSidecar writes them, covering every optional
// field both ways.
func fastPathRecords(t testing.TB) [][]byte {
	t.Helper()
	at := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.UTC)
	desc := "a description with \"quotes\" and <tags>" // escaped by json.Marshal: general path
	plain := "Отчёт за квартал"
	ttl := 30
	exp := at.Add(30 * 24 * time.Hour)
	var out [][]byte
	for i, m := range []FileMetadata{
		{OriginalFilename: "f.bin", ContentType: "application/octet-stream", Size: 0, UploadedBy: "u",
			Status: "active", RetentionPolicy: retentionPermanent},
		{OriginalFilename: "Отчёт 2026.pdf", ContentType: "application/pdf", Size: 1 << 40, UploadedBy: "alice",
			Description: &plain, Tags: []string{"x", "y"}, Status: "deleted", RetentionPolicy: retentionTemporary, TTLDays: &ttl, ExpiresAt: &exp},
		{OriginalFilename: "e.txt", ContentType: "text/plain", Size: 7, UploadedBy: "bob",
			Description: &desc, Tags: []string{}, Status: "expired", RetentionPolicy: retentionTemporary, TTLDays: &ttl, ExpiresAt: &exp},
	} {
		id := uuid.New()
		m.FileID, m.Checksum, m.UploadedAt = id.String(), strings.Repeat("ab", 32), at.Add(time.Duration(i)*time.Second)
		rec, err := newFileRecord(m, storageName(m.OriginalFilename, m.UploadedBy, m.UploadedAt, id))
		if err != nil {
			t.Fatal(err)
		}
		data, err := encodeSidecar(rec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// TestSidecarFastPathMatchesEncodingJSON: the sidecars the SE writes take the fast path
// (except the one whose description json.Marshal escapes) and decode to exactly what
// encoding/json makes of them.
func TestSidecarFastPathMatchesEncodingJSON(t *testing.T) {
	for i, data := range fastPathRecords(t) {
		fast, ok := decodeSidecarFast(data)
		ref, err := decodeSidecarJSON(data)
		if err != nil {
			t.Fatalf("record %d: encoding/json rejects what encodeSidecar wrote: %v", i, err)
		}
		if wantFast := i != 2; ok != wantFast {
			t.Fatalf("record %d: fast path taken = %v, want %v: %s", i, ok, wantFast, data)
		}
		if ok && !reflect.DeepEqual(fast, ref) {
			t.Fatalf("record %d: fast path\n%+v\nencoding/json\n%+v", i, fast, ref)
		}
		if rec, err := decodeSidecar(data); err != nil || rec.meta.FileID != ref.FileID {
			t.Fatalf("record %d: decodeSidecar: %v", i, err)
		}
	}
}

func TestSidecarFastPathDeclines(t *testing.T) {
	valid := string(fastPathRecords(t)[0])
	for name, data := range map[string]string{
		"leading space":    " " + valid,
		"trailing garbage": strings.TrimSpace(valid) + "x",
		"fraction":         strings.Replace(valid, `"size":0`, `"size":0.0`, 1),
		"exponent":         strings.Replace(valid, `"size":0`, `"size":0e0`, 1),
		"leading zero":     strings.Replace(valid, `"size":0`, `"size":00`, 1),
		"escape":           strings.Replace(valid, `"f.bin"`, `"f\u002ebin"`, 1),
		"upper-case key":   strings.Replace(valid, `"size"`, `"SIZE"`, 1),
		"null time":        strings.Replace(valid, `"uploaded_at":"2026-12-03T10:00:00.123456789Z"`, `"uploaded_at":null`, 1),
		"truncated":        valid[:len(valid)/2],
	} {
		if _, ok := decodeSidecarFast([]byte(data)); ok {
			t.Errorf("%s: fast path accepted %q", name, data)
		}
	}
}

// FuzzSidecarFastPath: whatever the fast path accepts, encoding/json accepts too and
// decodes to the same sidecar.
func FuzzSidecarFastPath(f *testing.F) {
	for _, data := range fastPathRecords(f) {
		f.Add(data)
	}
	f.Add([]byte(`{"file_id":"","original_filename":"","content_type":"","size":-0,"checksum":"","uploaded_by":"","uploaded_at":"2026-01-01T00:00:00Z","description":null,"tags":[""],"status":"","retention_policy":"","ttl_days":-1,"expires_at":null,"storage_name":""}` + "\r\n\t "))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeSidecarFast(data)
		if !ok {
			return
		}
		ref, err := decodeSidecarJSON(data)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, data)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast path\n%+v\nencoding/json\n%+v\ninput %q", fast, ref, data)
		}
	})
}
