// client.go — the HTTPS side of the tool: keep-alive HTTP/1.1 clients that trust only
// the run's certificate, multipart upload bodies streamed from a repeating pattern, and
// the few API calls the measurements make (CONTRACT §4).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// bulkBuffer is the socket buffer of the client transports; the same for the SE and the
// bare baseline server.
const bulkBuffer = 64 << 10

// newClient returns a client with its own transport: one keep-alive HTTP/1.1 connection
// pool per client, so n clients mean n connections.
func newClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
			DisableCompression:  true, // bytes as the server sent them
			ReadBufferSize:      bulkBuffer,
			WriteBufferSize:     bulkBuffer,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// drain reads and closes a body so its connection goes back to the pool.
func drain(resp *http.Response) int64 {
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return n
}

// patternReader yields size bytes by repeating block: incompressible when block is
// random, and free to produce, so the client spends its CPU on TLS only.
type patternReader struct {
	block     []byte
	remaining int64
	off       int
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.remaining <= 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(int64(len(b)), p.remaining)], p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.remaining -= int64(n)
	return n, nil
}

// randomBlock returns n random bytes (the pattern of generated content).
func randomBlock(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// multipartUpload frames content as the `file` part of a multipart/form-data body and
// returns the body, its Content-Type and its exact length.
func multipartUpload(filename string, content io.Reader, size int64) (io.Reader, string, int64) {
	var nonce [12]byte
	rand.Read(nonce[:])
	boundary := "loadtool" + hex.EncodeToString(nonce[:])
	head := "--" + boundary + "\r\n" +
		`Content-Disposition: form-data; name="file"; filename="` + filename + "\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head), content, strings.NewReader(tail))
	return body, "multipart/form-data; boundary=" + boundary, int64(len(head)) + size + int64(len(tail))
}

// target is an SE (or any server) the measurements talk to.
type target struct {
	BaseURL string
	Token   string
}

// uploadedFile is the part of FileMetadata the tool checks.
type uploadedFile struct {
	FileID   string `json:"file_id"`
	Size     int64  `json:"size"`
	Checksum string `json:"checksum"`
}

// upload sends one file and returns what the SE recorded. Anything but 201 is an error.
func (t target) upload(ctx context.Context, c *http.Client, filename string, content io.Reader, size int64) (uploadedFile, error) {
	body, ct, length := multipartUpload(filename, content, size)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.BaseURL+"/api/v1/files/upload", body)
	if err != nil {
		return uploadedFile{}, fmt.Errorf("build upload: %w", err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+t.Token)
	resp, err := c.Do(req)
	if err != nil {
		return uploadedFile{}, fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return uploadedFile{}, fmt.Errorf("read upload answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return uploadedFile{}, fmt.Errorf("upload: status %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	var f uploadedFile
	if err := json.Unmarshal(data, &f); err != nil {
		return uploadedFile{}, fmt.Errorf("decode upload answer: %w", err)
	}
	if f.Size != size {
		return uploadedFile{}, fmt.Errorf("upload: SE recorded %d bytes, sent %d", f.Size, size)
	}
	return f, nil
}

// get fetches path (authenticated when the target has a token), discards the body and
// returns its length. Anything but 200 is an error.
func (t target) get(ctx context.Context, c *http.Client, path string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.BaseURL+path, nil)
	if err != nil {
		return 0, fmt.Errorf("build GET %s: %w", path, err)
	}
	if t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+t.Token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		drain(resp)
		return 0, fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, bytes.TrimSpace(data))
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, fmt.Errorf("GET %s: body after %d bytes: %w", path, n, err)
	}
	return n, nil
}

// listPage is the part of FileListResponse the tool checks.
type listPage struct {
	Items   []json.RawMessage `json:"items"`
	Total   int               `json:"total"`
	HasMore bool              `json:"has_more"`
}

// list fetches one page and decodes it (used to check totals, not in timed loops).
func (t target) list(ctx context.Context, c *http.Client, query string) (listPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.BaseURL+"/api/v1/files?"+query, nil)
	if err != nil {
		return listPage{}, fmt.Errorf("build list: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	resp, err := c.Do(req)
	if err != nil {
		return listPage{}, fmt.Errorf("list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return listPage{}, fmt.Errorf("list %s: status %d: %s", query, resp.StatusCode, bytes.TrimSpace(data))
	}
	var page listPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return listPage{}, fmt.Errorf("decode list: %w", err)
	}
	return page, nil
}
