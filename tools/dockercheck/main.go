// Command dockercheck checks the Storage Element's Dockerfile on a machine that has no
// Docker engine. It is a CI tool in its own module; the product never imports it.
//
//	dockercheck lint -f Dockerfile
//	    Runs BuildKit's own Dockerfile linter (the rules behind `docker build --check`,
//	    experimental ones included) fully offline, then the project's image policy
//	    (policy.go). Prints every finding; exit status 1 when there is any.
//
//	dockercheck assemble -f Dockerfile -context DIR -work DIR [-build-arg K=V]...
//	    Replays the image build without Docker (assemble.go): filters the context through
//	    .dockerignore, runs the build stage's COPY/RUN steps on the host, lays out the final
//	    stage's file tree in WORK/rootfs and writes WORK/image.env, a bash fragment with the
//	    image's runtime configuration (user, env, entrypoint, cmd, healthcheck, ports,
//	    volumes) for tools/ci/check-docker.sh to chroot into.
//
//	dockercheck testenv -dir DIR | dockercheck freeport
//	    Fixtures for running the assembled tree: TLS pair, JWKS served on loopback, a
//	    token (testenv.go).
//
// Exit status: 0 clean, 1 findings or failed replay, 2 usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "lint":
		err = runLint(os.Args[2:])
	case "assemble":
		err = runAssemble(os.Args[2:])
	case "testenv":
		err = runTestEnv(os.Args[2:])
	case "freeport":
		err = runFreePort()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockercheck %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dockercheck lint -f Dockerfile\n"+
		"       dockercheck assemble -f Dockerfile -context DIR -work DIR [-build-arg K=V]...\n"+
		"       dockercheck testenv -dir DIR [-max 10m]\n"+
		"       dockercheck freeport")
	os.Exit(2)
}

// errFindings is returned when the checks ran and found problems (already printed).
var errFindings = errors.New("findings reported above")

func runLint(args []string) error {
	fs := flag.NewFlagSet("lint", flag.ExitOnError)
	path := fs.String("f", "Dockerfile", "Dockerfile to check")
	_ = fs.Parse(args)

	src, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("read dockerfile: %w", err)
	}
	warnings, err := buildkitLint(src, *path)
	if err != nil {
		return err
	}
	fmt.Printf("buildkit linter (%s): %d warning(s)\n", buildkitVersion(), len(warnings))
	for _, w := range warnings {
		fmt.Println("  " + w)
	}

	df, err := parseDockerfile(src, nil)
	if err != nil {
		return err
	}
	problems := checkPolicy(df)
	fmt.Printf("image policy: %d problem(s)\n", len(problems))
	for _, p := range problems {
		fmt.Println("  " + p)
	}
	if len(warnings)+len(problems) > 0 {
		return errFindings
	}
	return nil
}

// buildArgs collects repeated -build-arg K=V flags.
type buildArgs map[string]string

func (b buildArgs) String() string { return fmt.Sprint(map[string]string(b)) }

func (b buildArgs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("build-arg %q: want KEY=VALUE", v)
	}
	b[k] = val
	return nil
}

func runAssemble(args []string) error {
	fs := flag.NewFlagSet("assemble", flag.ExitOnError)
	path := fs.String("f", "Dockerfile", "Dockerfile to replay")
	ctxDir := fs.String("context", ".", "build context directory")
	workDir := fs.String("work", "", "empty work directory (required)")
	bargs := buildArgs{}
	fs.Var(bargs, "build-arg", "KEY=VALUE (repeatable)")
	_ = fs.Parse(args)
	if *workDir == "" {
		return errors.New("-work is required")
	}
	src, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("read dockerfile: %w", err)
	}
	return assemble(src, *ctxDir, *workDir, bargs)
}
