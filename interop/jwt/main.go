// Command jwt-interop cross-checks the Storage Element's handwritten RS256 verifier
// (jwt.go, jwks.go in the repository root) against github.com/golang-jwt/jwt/v5.
//
// It never imports the product. It starts the built binary (`se serve`) twice on loopback,
// publishes its own keys through a JWKS over http://127.0.0.1, sends each token of the table
// (cases.go) as `GET /api/v1/files` with `Authorization: Bearer <token>`, and compares the
// SE's answer (200 = accepted, 401 = rejected, anything else = error) with the reference
// verdict (reference.go): the plain library's verdict combined with the SE rules below.
//
// Where the SE intentionally differs from the plain library (jwt.Parse with
// WithValidMethods(["RS256"]), WithLeeway(30s), WithExpirationRequired, WithIssuer /
// WithAudience when configured, key by kid from the JWKS). Each is a rule in reference.go,
// and every case that depends on one names it, so an undeclared difference fails the run:
//
//  1. ruleMaxSize: tokens over 16 KiB (16384 bytes) are rejected before any decoding
//     (CONTRACT §3). The library has no limit. Cases: 16385 bytes and a ~32 KiB token,
//     both validly signed; exactly 16384 bytes is accepted by both.
//  2. ruleMinRSABits: JWKS keys under 2048 bits are skipped (CONTRACT §3); the library
//     verifies with whatever key the key function returns. Case: the 1024-bit key, which
//     the served JWKS does contain.
//  3. ruleSubject: sub is required and must be a non-empty string (CONTRACT §3); the
//     library looks at sub only under WithSubject. Cases: missing, "", 42.
//  4. ruleIssuedAt: iat beyond now+leeway is rejected (CONTRACT §3 "nbf and iat checked
//     when present"); the library checks iat only under WithIssuedAt. Case: iat in 1h.
//  5. ruleTyp: typ must be absent, "JWT" or "at+jwt" (any case); the library ignores typ.
//     "at+jwt" (RFC 9068 OAuth 2.0 access tokens) is accepted by design, so that case
//     agrees with the library; typ "JOSE" is where they part.
//  6. ruleNoCrit: any crit header is rejected, the SE implements no JWS extension
//     (RFC 7515 §4.1.11); the library ignores crit.
//  7. ruleCanonicalB64: segments must be canonical unpadded base64url; the library decodes
//     non-zero trailing bits unless WithStrictDecoding. Case: signature whose last
//     character has an unused bit set (same bytes, different text).
//  8. ruleDateRange: exp/nbf/iat must lie in [0, 253402300799] (year 9999); the library
//     takes any float. Cases: nbf -1, exp 253402300800.
//  9. ruleClaimTypes: iss, aud, scopes, scope, exp, nbf, iat must have their JSON types
//     when present even if unused ("fail closed"); the library reads only what it checks.
//     Case: "scopes":"files:read" (a string, not an array).
//
// HTTP framing is outside the comparison: net/http trims whitespace around header values,
// and a token with CR/LF cannot be sent at all. Tokens here have no surrounding whitespace.
//
// Output: one line per case (case, library, reference, SE, agree/DISAGREE, rule), then a
// summary. Exit status 0 when every case agrees and the table is consistent, 1 on any
// disagreement, 2 when the run could not be set up.
package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	bin := flag.String("bin", "", "path of the built SE binary (required)")
	timeout := flag.Duration("timeout", 3*time.Minute, "bound on the whole run")
	verbose := flag.Bool("v", false, "also print the library's error for each case")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "jwt-interop: -bin is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	disagreements, err := run(ctx, *bin, *verbose, os.Stdout)
	cancel()
	stop()
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "jwt-interop:", err)
		os.Exit(2)
	case disagreements > 0:
		os.Exit(1)
	}
}

// outcome is one row of the table.
type outcome struct {
	c       tokenCase
	ref     reference
	se      string // "accept", "reject" or "error: ..."
	agrees  bool
	comment string
}

// run sets up the world, sends every case and prints the table. It returns the number of
// rows that do not agree; err is for set-up failures only.
func run(ctx context.Context, bin string, verbose bool, out io.Writer) (disagreements int, err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return 0, fmt.Errorf("binary path: %w", err)
	}
	dir, err := os.MkdirTemp("", "jwt-interop-")
	if err != nil {
		return 0, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	ks, err := newKeySet()
	if err != nil {
		return 0, err
	}
	document, err := ks.jwksDocument()
	if err != nil {
		return 0, err
	}
	keys, err := publishedKeys(document)
	if err != nil {
		return 0, err
	}
	jwks, err := startJWKS(document)
	if err != nil {
		return 0, err
	}
	defer jwks.close()
	certs, err := writeTLSPair(dir)
	if err != nil {
		return 0, err
	}
	client := newSEClient(certs.roots)

	processes := map[target]*seProcess{}
	defer func() {
		for _, p := range processes {
			if stopErr := p.stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}
	}()
	for t, name := range map[target]string{targetPlain: "plain", targetIssAud: "iss-aud"} {
		p, err := startSE(bin, dir, name, certs, jwks.url, configOf(t))
		if err != nil {
			return 0, err
		}
		processes[t] = p
	}
	for _, p := range processes {
		if err := p.waitReady(ctx, client); err != nil {
			return 0, err
		}
	}

	cases, err := buildCases(ks, time.Now())
	if err != nil {
		return 0, fmt.Errorf("build tokens: %w", err)
	}
	outcomes := make([]outcome, 0, len(cases))
	for _, c := range cases {
		o, err := check(ctx, client, processes[c.target], c, keys)
		if err != nil {
			return 0, err
		}
		outcomes = append(outcomes, o)
	}
	disagreements = printTable(out, outcomes, verbose)
	return disagreements, nil
}

// check computes the reference for c and asks its SE.
func check(ctx context.Context, client *http.Client, p *seProcess, c tokenCase, keys map[string]*rsa.PublicKey) (outcome, error) {
	o := outcome{c: c, ref: evaluate(c, keys, configOf(c.target), time.Now())}
	status, err := getStatus(ctx, client, p.baseURL+"/api/v1/files", c.token)
	switch {
	case ctx.Err() != nil:
		return o, fmt.Errorf("case %q: %w", c.name, ctx.Err())
	case err != nil:
		o.se = "error"
		o.comment = err.Error()
	case status == http.StatusOK:
		o.se = "accept"
	case status == http.StatusUnauthorized:
		o.se = "reject"
	default:
		o.se = "error"
		o.comment = fmt.Sprintf("HTTP %d", status)
	}
	o.agrees = o.se == verdictWord(o.ref.accept) && o.ref.problem == ""
	switch {
	case o.ref.problem != "":
		o.comment = "table: " + o.ref.problem
	case o.comment == "" && c.rule != "":
		o.comment = "SE rule: " + c.rule
	}
	return o, nil
}

// printTable writes the rows and a summary, and returns how many rows disagree.
func printTable(out io.Writer, outcomes []outcome, verbose bool) int {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tLIBRARY\tREFERENCE\tSE\tRESULT\tNOTE")
	disagreements, differences := 0, 0
	for _, o := range outcomes {
		result := "agree"
		if !o.agrees {
			result = "DISAGREE"
			disagreements++
		}
		if o.c.rule != "" {
			differences++
		}
		note := o.comment
		if verbose && o.ref.libraryErr != nil {
			note = strings.TrimSpace(note + " (library: " + o.ref.libraryErr.Error() + ")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.c.name, verdictWord(o.ref.libraryErr == nil),
			verdictWord(o.ref.accept), o.se, result, note)
	}
	_ = tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(out, strings.TrimRight(line, " \n"))
	}
	fmt.Fprintf(out, "%d cases, %d agree, %d DISAGREE; %d decided by a documented SE rule\n",
		len(outcomes), len(outcomes)-disagreements, disagreements, differences)
	return disagreements
}
