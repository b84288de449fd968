// client.go sends one request to the SE and judges the answer: against the
// document (status, headers, body), against the status and error code the
// scenario expects, and against contract rules a schema cannot say (JSON on
// one line, no internal path in any body).
//
// Counting: a response counts as "validated" when the document accepted it;
// the per-status tally counts validated responses only, so the numbers add
// up. Every other outcome is a failure line and makes the run fail.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// maxBody caps what the tool reads of one response; the check's files are
// a few KiB, so a larger body is itself a finding.
const maxBody = 1 << 20

// call is one request of the scenario and what it must produce.
type call struct {
	Name      string // what the request is for, shown on failure
	Method    string
	Path      string // path and query
	Token     string // bearer token; "" sends no Authorization
	Header    map[string]string
	Body      []byte
	CT        string // Content-Type of Body
	Want      int    // expected status; 0 accepts any documented status
	WantCode  string // expected error.code; "" skips the check
	CheckReq  bool   // also validate the request against the document
	Component string // validate against components.responses.<name> (undocumented routes)
}

// result is what the SE answered.
type result struct {
	Status int
	Header http.Header
	Body   []byte
}

// errorCode returns error.code of an error envelope, or "".
func (r *result) errorCode() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &env) != nil {
		return ""
	}
	return env.Error.Code
}

// checker runs calls against one SE at a time and keeps the score.
type checker struct {
	spec     *spec
	client   *http.Client
	baseURL  string
	phase    string
	verbose  bool
	needles  []string // strings no response may contain (temp paths)
	out      io.Writer
	tally    map[int]int
	total    int
	failures []string
	observed map[string]map[int]bool // operationId -> statuses validated
}

func newChecker(s *spec, client *http.Client, out io.Writer, verbose bool) *checker {
	return &checker{
		spec: s, client: client, out: out, verbose: verbose,
		tally: map[int]int{}, observed: map[string]map[int]bool{},
	}
}

// fail records one failure of the current phase.
func (c *checker) fail(format string, args ...any) {
	line := fmt.Sprintf("[%s] ", c.phase) + fmt.Sprintf(format, args...)
	c.failures = append(c.failures, line)
	if c.verbose {
		fmt.Fprintln(c.out, "FAIL", line)
	}
}

// do sends the call and judges the answer. It returns nil only when no
// answer came at all (that is recorded as a failure).
func (c *checker) do(ctx context.Context, k call) *result {
	req, err := c.newRequest(ctx, k)
	if err != nil {
		c.fail("%s: build request: %v", k.Name, err)
		return nil
	}
	res, err := c.send(req)
	if err != nil {
		c.fail("%s: %s %s: %v", k.Name, k.Method, k.Path, err)
		return nil
	}
	what := fmt.Sprintf("%s: %s %s -> %d", k.Name, k.Method, k.Path, res.Status)
	if k.CheckReq {
		if err := c.spec.validateRequest(ctx, req, k.Body); err != nil {
			c.fail("%s: %s", what, compactErr(err))
		}
	}
	c.judgeDocument(ctx, k, req, res, what)
	c.judgeExpectation(k, res, what)
	c.judgeContractRules(res, what)
	if c.verbose {
		fmt.Fprintf(c.out, "     %-8s %s\n", c.phase, what)
		if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			fmt.Fprintf(c.out, "              %s\n", snippet(res.Body))
		}
	}
	return res
}

// newRequest builds the HTTP request of a call.
func (c *checker) newRequest(ctx context.Context, k call) (*http.Request, error) {
	var body io.Reader = http.NoBody
	if k.Body != nil {
		body = bytes.NewReader(k.Body)
	}
	req, err := http.NewRequestWithContext(ctx, k.Method, c.baseURL+k.Path, body)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	if k.Token != "" {
		req.Header.Set("Authorization", "Bearer "+k.Token)
	}
	if k.CT != "" {
		req.Header.Set("Content-Type", k.CT)
	}
	for name, value := range k.Header {
		req.Header.Set(name, value)
	}
	return req, nil
}

// send performs the request and reads at most maxBody bytes of the answer.
func (c *checker) send(req *http.Request) (*result, error) {
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("body larger than %d bytes", maxBody)
	}
	return &result{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// judgeDocument validates the answer against the document and counts it.
func (c *checker) judgeDocument(ctx context.Context, k call, req *http.Request, res *result, what string) {
	var err error
	if k.Component != "" {
		err = c.spec.validateComponent(ctx, k.Component, req, res.Status, res.Header, res.Body)
	} else {
		err = c.spec.validateResponse(ctx, req, res.Status, res.Header, res.Body)
	}
	if err != nil {
		c.fail("%s: %s; body: %s", what, compactErr(err), snippet(res.Body))
		return
	}
	c.total++
	c.tally[res.Status]++
	if k.Component != "" {
		return
	}
	if route, _, err := c.spec.findRoute(routingRequest(req)); err == nil {
		id := route.Operation.OperationID
		if c.observed[id] == nil {
			c.observed[id] = map[int]bool{}
		}
		c.observed[id][res.Status] = true
	}
}

// judgeExpectation compares status and error code with what the scenario
// expects.
func (c *checker) judgeExpectation(k call, res *result, what string) {
	if k.Want != 0 && res.Status != k.Want {
		c.fail("%s: want status %d; body: %s", what, k.Want, snippet(res.Body))
		return
	}
	if k.WantCode != "" && k.Method != http.MethodHead {
		if got := res.errorCode(); got != k.WantCode {
			c.fail("%s: want error code %s, got %q", what, k.WantCode, got)
		}
	}
}

// judgeContractRules checks CONTRACT §4 rules outside any schema: JSON on
// one line and no internal path in a body or header.
func (c *checker) judgeContractRules(res *result, what string) {
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if trimmed := bytes.TrimSuffix(res.Body, []byte("\n")); bytes.ContainsAny(trimmed, "\r\n") {
			c.fail("%s: JSON body is not on one line", what)
		}
	}
	for _, needle := range c.needles {
		if bytes.Contains(res.Body, []byte(needle)) {
			c.fail("%s: body leaks an internal path (%s)", what, needle)
		}
		for _, name := range slices.Sorted(maps.Keys(res.Header)) {
			if strings.Contains(strings.Join(res.Header[name], " "), needle) {
				c.fail("%s: header %s leaks an internal path (%s)", what, name, needle)
			}
		}
	}
}

// compactErr renders a validator error on one bounded line: kin-openapi's
// schema errors carry a multi-line schema dump that only the value needs.
func compactErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\nSchema:"); i >= 0 {
		if j := strings.Index(s[i:], "\nValue:"); j >= 0 {
			s = s[:i] + " value:" + s[i+j+len("\nValue:"):]
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	const limit = 600
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// snippet shortens a body for a failure line.
func snippet(body []byte) string {
	const limit = 300
	s := strings.TrimSpace(string(body))
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

// decodeJSON unmarshals a body the document already accepted.
func decodeJSON[T any](c *checker, res *result, what string) (T, bool) {
	var v T
	if res == nil {
		return v, false
	}
	if err := json.Unmarshal(res.Body, &v); err != nil {
		c.fail("%s: decode body: %v; body: %s", what, err, snippet(res.Body))
		return v, false
	}
	return v, true
}
