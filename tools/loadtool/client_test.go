package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"testing"
)

func TestPatternReaderRepeatsBlock(t *testing.T) {
	block := []byte("abc")
	got, err := io.ReadAll(&patternReader{block: block, remaining: 10})
	if err != nil || string(got) != "abcabcabca" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestMultipartUploadFraming: the body is a valid multipart/form-data message whose
// only part is `file` with the exact content, and the announced length is exact.
func TestMultipartUploadFraming(t *testing.T) {
	content := randomBlock(10_000)
	body, ct, length := multipartUpload("x.bin", bytes.NewReader(content), int64(len(content)))
	raw, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != length {
		t.Fatalf("announced %d bytes, body has %d", length, len(raw))
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("Content-Type %q: %v", ct, err)
	}
	mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	part, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if part.FormName() != "file" || part.FileName() != "x.bin" {
		t.Fatalf("part %q filename %q", part.FormName(), part.FileName())
	}
	got, err := io.ReadAll(part)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("part content differs (%d bytes): %v", len(got), err)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("want exactly one part, next: %v", err)
	}
}
