// attr.go — the metadata sidecar (`<storage_name>.attr.json`) and the in-memory file record.
//
// On-disk format: one JSON object on one line, the FileMetadata of CONTRACT §5 plus
// "storage_name", the base name of the blob it describes:
//
//	{"file_id":"…","original_filename":"…",…,"expires_at":null,"storage_name":"…"}
//
// Invariants:
//   - The sidecar is the only source of truth for metadata; fileRecord is a cache of it.
//   - A sidecar is never trusted: decodeSidecar validates every field and accepts a
//     storage_name only when validStorageName confines it to one path element of the
//     shard directory derived from file_id (blob.go). Nothing read from a sidecar ever
//     becomes a path by itself.
//   - Sidecars are written only by writeFileAtomic (temp → fsync → rename) followed by a
//     directory fsync, under the WAL (wal.go).
//   - fileRecord values are immutable once published to the index: an update builds a
//     new record.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Bounds on client-supplied metadata (CONTRACT §4, §11).
const (
	maxDescriptionChars = 1000
	maxTags             = 100
	maxTagChars         = 256
	maxFilenameBytes    = 1024
	maxContentTypeBytes = 255
	maxSubjectBytes     = 1024
	maxSidecarBytes     = 256 << 10 // generous upper bound of a valid sidecar
	defaultTTLDays      = 30        // retention of files uploaded in edit mode
)

type fileStatus uint8

const (
	statusActive fileStatus = iota + 1
	statusExpired
	statusDeleted
)

func (s fileStatus) String() string {
	switch s {
	case statusActive:
		return "active"
	case statusExpired:
		return "expired"
	case statusDeleted:
		return "deleted"
	}
	return "unknown"
}

func parseFileStatus(s string) (fileStatus, bool) {
	switch s {
	case "active":
		return statusActive, true
	case "expired":
		return statusExpired, true
	case "deleted":
		return statusDeleted, true
	}
	return 0, false
}

const (
	retentionTemporary = "temporary"
	retentionPermanent = "permanent"
)

// FileMetadata is the wire shape of CONTRACT §5. Optional values are null when absent.
type FileMetadata struct {
	FileID           string     `json:"file_id"`
	OriginalFilename string     `json:"original_filename"`
	ContentType      string     `json:"content_type"`
	Size             int64      `json:"size"`
	Checksum         string     `json:"checksum"`
	UploadedBy       string     `json:"uploaded_by"`
	UploadedAt       time.Time  `json:"uploaded_at"`
	Description      *string    `json:"description"`
	Tags             []string   `json:"tags"`
	Status           string     `json:"status"`
	RetentionPolicy  string     `json:"retention_policy"`
	TTLDays          *int       `json:"ttl_days"`
	ExpiresAt        *time.Time `json:"expires_at"`
}

// sidecar is the on-disk document: the metadata plus the blob's base name.
type sidecar struct {
	FileMetadata
	StorageName string `json:"storage_name"`
}

// fileRecord is one file as the index holds it. Immutable once published.
type fileRecord struct {
	meta        FileMetadata
	fileID      uuid.UUID
	st          fileStatus
	storageName string
}

func (r *fileRecord) id() uuid.UUID         { return r.fileID }
func (r *fileRecord) uploadedAt() time.Time { return r.meta.UploadedAt }
func (r *fileRecord) status() fileStatus    { return r.st }
func (r *fileRecord) size() int64           { return r.meta.Size }

// metadata returns a copy of the wire metadata that callers may not mutate into the record.
func (r *fileRecord) metadata() FileMetadata {
	m := r.meta
	if m.Tags != nil {
		m.Tags = append([]string(nil), m.Tags...)
	}
	return m
}

// withMeta builds a new record from validated metadata (the storage name is kept).
func (r *fileRecord) withMeta(m FileMetadata) (*fileRecord, error) {
	return newFileRecord(m, r.storageName)
}

// newFileRecord validates metadata and a storage name and builds a record.
func newFileRecord(m FileMetadata, storageName string) (*fileRecord, error) {
	id, err := parseFileID(m.FileID)
	if err != nil {
		return nil, fmt.Errorf("file_id: %w", err)
	}
	st, ok := parseFileStatus(m.Status)
	if !ok {
		return nil, fmt.Errorf("status %q is not valid", m.Status)
	}
	if err := validateMetadata(&m); err != nil {
		return nil, err
	}
	if !validStorageName(storageName, id) {
		return nil, errors.New("storage_name is not a safe name derived from file_id")
	}
	// The enumerations become the package's constant strings, so a million records do
	// not each hold their own copy of "active" and "temporary".
	m.Status = st.String()
	if m.RetentionPolicy == retentionTemporary {
		m.RetentionPolicy = retentionTemporary
	} else {
		m.RetentionPolicy = retentionPermanent
	}
	m.UploadedAt = m.UploadedAt.UTC()
	if m.ExpiresAt != nil {
		t := m.ExpiresAt.UTC()
		m.ExpiresAt = &t
	}
	return &fileRecord{meta: m, fileID: id, st: st, storageName: storageName}, nil
}

// parseFileID accepts only the canonical lowercase 36-character form of a UUID, so one
// file has exactly one spelling on the wire and on disk.
func parseFileID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, errors.New("not a UUID")
	}
	id, err := uuid.Parse(s)
	if err != nil || id.String() != s {
		return uuid.UUID{}, errors.New("not a canonical lowercase UUID")
	}
	return id, nil
}

func validateMetadata(m *FileMetadata) error {
	switch {
	case m.Size < 0:
		return errors.New("size is negative")
	case !isLowerHex(m.Checksum, 64):
		return errors.New("checksum is not 64 lowercase hex digits")
	case m.OriginalFilename == "" || len(m.OriginalFilename) > maxFilenameBytes || !utf8.ValidString(m.OriginalFilename):
		return errors.New("original_filename is empty, too long or not UTF-8")
	case m.ContentType == "" || len(m.ContentType) > maxContentTypeBytes:
		return errors.New("content_type is empty or too long")
	case m.UploadedBy == "" || len(m.UploadedBy) > maxSubjectBytes:
		return errors.New("uploaded_by is empty or too long")
	case m.UploadedAt.IsZero():
		return errors.New("uploaded_at is missing")
	}
	if err := validateDescription(m.Description); err != nil {
		return err
	}
	if err := validateTags(m.Tags); err != nil {
		return err
	}
	return validateRetention(m)
}

func validateRetention(m *FileMetadata) error {
	switch m.RetentionPolicy {
	case retentionPermanent:
		if m.TTLDays != nil || m.ExpiresAt != nil {
			return errors.New("permanent files have no ttl_days or expires_at")
		}
	case retentionTemporary:
		if m.TTLDays == nil || *m.TTLDays < 1 || *m.TTLDays > 365 || m.ExpiresAt == nil {
			return errors.New("temporary files need ttl_days 1..365 and expires_at")
		}
	default:
		return fmt.Errorf("retention_policy %q is not valid", m.RetentionPolicy)
	}
	return nil
}

// validateDescription enforces CONTRACT §4: at most 1000 characters of valid UTF-8.
func validateDescription(d *string) error {
	if d == nil {
		return nil
	}
	if !utf8.ValidString(*d) || utf8.RuneCountInString(*d) > maxDescriptionChars {
		return fmt.Errorf("description must be valid UTF-8 of at most %d characters", maxDescriptionChars)
	}
	return nil
}

// validateTags enforces CONTRACT §11: at most 100 tags of at most 256 characters each.
func validateTags(tags []string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("at most %d tags are allowed", maxTags)
	}
	for _, t := range tags {
		if !utf8.ValidString(t) || utf8.RuneCountInString(t) > maxTagChars {
			return fmt.Errorf("each tag must be valid UTF-8 of at most %d characters", maxTagChars)
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// encodeSidecar renders the on-disk document of a record: one line, newline-terminated.
func encodeSidecar(r *fileRecord) ([]byte, error) {
	b, err := json.Marshal(sidecar{FileMetadata: r.meta, StorageName: r.storageName})
	if err != nil {
		return nil, fmt.Errorf("encode sidecar: %w", err)
	}
	return append(b, '\n'), nil
}

// decodeSidecarJSON is the general decoder: any valid JSON object with exactly the
// sidecar's fields (encoding/json rules: any order, escapes, white space).
func decodeSidecarJSON(data []byte) (sidecar, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc sidecar
	if err := dec.Decode(&sc); err != nil {
		return sidecar{}, fmt.Errorf("decode sidecar: %w", err)
	}
	// Anything but JSON white space after the object is trailing data. (Checked on the
	// input rather than with dec.More, which grows the decoder's buffer to peek.)
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) != 0 {
		return sidecar{}, errors.New("decode sidecar: trailing data")
	}
	return sc, nil
}

// decodeSidecar parses and validates a sidecar. Unknown fields are rejected so a
// damaged or foreign file is reported rather than half-read.
func decodeSidecar(data []byte) (*fileRecord, error) {
	if len(data) > maxSidecarBytes {
		return nil, errors.New("sidecar is larger than any valid sidecar")
	}
	sc, ok := decodeSidecarFast(data)
	if !ok {
		var err error
		if sc, err = decodeSidecarJSON(data); err != nil {
			return nil, err
		}
	}
	rec, err := newFileRecord(sc.FileMetadata, sc.StorageName)
	if err != nil {
		return nil, fmt.Errorf("invalid sidecar: %w", err)
	}
	return rec, nil
}
