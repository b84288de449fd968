// sidecar_fast.go — a fast path for decoding sidecars in the exact form encodeSidecar
// writes. The start-up index build decodes every sidecar of the data directory, and
// encoding/json's reflection-driven decoder was the largest CPU cost of a restart after
// the file system calls themselves.
//
// Accepted form (json.Marshal of sidecar: fields in struct order, no white space):
//
//	{"file_id":S,"original_filename":S,"content_type":S,"size":I,"checksum":S,
//	 "uploaded_by":S,"uploaded_at":T,"description":null|S,"tags":null|[S,…],
//	 "status":S,"retention_policy":S,"ttl_days":null|I,"expires_at":null|T,
//	 "storage_name":S}   then only JSON white space
//
// where S is a string without escapes or control characters and of valid UTF-8, I an
// integer without fraction or exponent, and T a string time.Time.UnmarshalJSON takes.
//
// Contract: decodeSidecarFast returns either exactly what decodeSidecarJSON returns for
// the same bytes, or ok=false, and the caller then uses decodeSidecarJSON. It never
// accepts input that decodeSidecarJSON rejects and never decides a field differently;
// FuzzSidecarFastPath checks both. Validation of the values (newFileRecord) is the same
// on both paths.
package main

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"
)

// sidecarScanner walks the input left to right; every method reports false when the
// input leaves the accepted form.
type sidecarScanner struct {
	data []byte
	pos  int
}

// decodeSidecarFast decodes a sidecar in encodeSidecar's form (see the file comment).
func decodeSidecarFast(data []byte) (sidecar, bool) {
	var sc sidecar
	m := &sc.FileMetadata
	s := sidecarScanner{data: data}
	ok := s.literal(`{"file_id":`) && s.str(&m.FileID) &&
		s.literal(`,"original_filename":`) && s.str(&m.OriginalFilename) &&
		s.literal(`,"content_type":`) && s.str(&m.ContentType) &&
		s.literal(`,"size":`) && s.int64(&m.Size) &&
		s.literal(`,"checksum":`) && s.str(&m.Checksum) &&
		s.literal(`,"uploaded_by":`) && s.str(&m.UploadedBy) &&
		s.literal(`,"uploaded_at":`) && s.time(&m.UploadedAt) &&
		s.literal(`,"description":`) && s.optStr(&m.Description) &&
		s.literal(`,"tags":`) && s.strings(&m.Tags) &&
		s.literal(`,"status":`) && s.str(&m.Status) &&
		s.literal(`,"retention_policy":`) && s.str(&m.RetentionPolicy) &&
		s.literal(`,"ttl_days":`) && s.optInt(&m.TTLDays) &&
		s.literal(`,"expires_at":`) && s.optTime(&m.ExpiresAt) &&
		s.literal(`,"storage_name":`) && s.str(&sc.StorageName) &&
		s.literal(`}`) && s.onlySpace()
	return sc, ok
}

func (s *sidecarScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return false
	}
	s.pos += len(lit)
	return true
}

// null consumes a JSON null if one comes next.
func (s *sidecarScanner) null() bool { return s.literal("null") }

// rawString returns the bytes between the quotes of a plain string.
func (s *sidecarScanner) rawString() ([]byte, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	ascii := true
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			raw := s.data[start:i]
			if !ascii && !utf8.Valid(raw) {
				return nil, false // encoding/json would substitute U+FFFD
			}
			s.pos = i + 1
			return raw, true
		case c == '\\' || c < 0x20:
			return nil, false // escapes and control characters: the general decoder
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (s *sidecarScanner) str(dst *string) bool {
	raw, ok := s.rawString()
	if ok {
		*dst = string(raw)
	}
	return ok
}

func (s *sidecarScanner) optStr(dst **string) bool {
	if s.null() {
		return true
	}
	var v string
	if !s.str(&v) {
		return false
	}
	*dst = &v
	return true
}

// strings decodes null (nil) or an array of plain strings ([] is an empty, non-nil
// slice, as encoding/json makes it).
func (s *sidecarScanner) strings(dst *[]string) bool {
	if s.null() {
		return true
	}
	if !s.literal("[") {
		return false
	}
	out := []string{}
	if s.literal("]") {
		*dst = out
		return true
	}
	for {
		var v string
		if !s.str(&v) {
			return false
		}
		out = append(out, v)
		if s.literal("]") {
			*dst = out
			return true
		}
		if !s.literal(",") {
			return false
		}
	}
}

// integer returns the text of a JSON integer: an optional minus and digits without a
// leading zero, followed by ',' or '}' (a fraction or exponent leaves the fast path).
func (s *sidecarScanner) integer() (string, bool) {
	start := s.pos
	i := start
	if i < len(s.data) && s.data[i] == '-' {
		i++
	}
	digits := i
	for i < len(s.data) && s.data[i] >= '0' && s.data[i] <= '9' {
		i++
	}
	if i == digits || (s.data[digits] == '0' && i-digits > 1) {
		return "", false
	}
	if i >= len(s.data) || (s.data[i] != ',' && s.data[i] != '}') {
		return "", false
	}
	s.pos = i
	return string(s.data[start:i]), true
}

func (s *sidecarScanner) int64(dst *int64) bool {
	text, ok := s.integer()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

func (s *sidecarScanner) optInt(dst **int) bool {
	if s.null() {
		return true
	}
	text, ok := s.integer()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(text, 10, strconv.IntSize)
	if err != nil {
		return false
	}
	v := int(n)
	*dst = &v
	return true
}

// time decodes a string with time.Time.UnmarshalJSON, as encoding/json does.
func (s *sidecarScanner) time(dst *time.Time) bool {
	start := s.pos
	if _, ok := s.rawString(); !ok {
		return false
	}
	return dst.UnmarshalJSON(s.data[start:s.pos]) == nil
}

func (s *sidecarScanner) optTime(dst **time.Time) bool {
	if s.null() {
		return true
	}
	var t time.Time
	if !s.time(&t) {
		return false
	}
	*dst = &t
	return true
}

// onlySpace accepts the rest of the input when it is JSON white space only.
func (s *sidecarScanner) onlySpace() bool {
	for _, c := range s.data[s.pos:] {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
