// Replay of the image build without a Docker engine.
//
// Layout of WORK after a successful run:
//
//	WORK/context/   the build context as Docker would send it (.dockerignore applied)
//	WORK/src/       the build stage's WORKDIR: COPY from the context lands here, RUN runs here
//	WORK/out/       the build stage's ${OUT} (the Dockerfile's ARG OUT is overridden to this)
//	WORK/rootfs/    the final image's file tree, owners as the image would have them
//	WORK/image.env  bash assignments: IMAGE_USER, IMAGE_ENV, IMAGE_ENTRYPOINT, IMAGE_CMD,
//	                IMAGE_HEALTHCHECK, IMAGE_EXPOSE, IMAGE_VOLUMES, IMAGE_WORKDIR, IMAGE_STOPSIGNAL
//
// The build stage runs on the host instead of in its base image (the host's Go and
// /etc/ssl/certs stand in for golang:*-bookworm's, both Debian). Only the instructions the
// Storage Element's Dockerfile uses are replayed; any other instruction is an error rather
// than silently skipped, so the replay can never drift from the Dockerfile unnoticed.
// Safety: every path the final stage copies from must lie inside WORK/out, so a changed
// Dockerfile can never make the replay read or chown host files outside WORK.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dockerignore"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
)

// outArg is the Dockerfile ARG naming the build stage's output directory.
const outArg = "OUT"

type owner struct{ uid, gid int }

var rootOwner = owner{0, 0}

// imageConfig is the runtime configuration of the final stage.
type imageConfig struct {
	user, workdir, stopSignal string
	env                       []string
	entrypoint, cmd, health   []string
	ports, volumes            []string
}

func assemble(src []byte, ctxDir, workDir string, bargs map[string]string) error {
	work, err := filepath.Abs(workDir)
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if err := requireEmptyDir(work); err != nil {
		return err
	}
	out := filepath.Join(work, "out")
	bargs[outArg] = out

	df, err := parseDockerfile(src, bargs)
	if err != nil {
		return err
	}
	if problems := checkPolicy(df); len(problems) > 0 {
		return fmt.Errorf("dockerfile violates the image policy (run dockercheck lint): %s", strings.Join(problems, "; "))
	}
	final := df.final()
	if _, ok := final.env.Get(outArg); !ok {
		return fmt.Errorf("final stage does not declare ARG %s; the replay relies on it", outArg)
	}

	ctxCopy := filepath.Join(work, "context")
	n, err := filterContext(ctxDir, ctxCopy)
	if err != nil {
		return err
	}
	fmt.Printf("context: %d file(s) after .dockerignore\n", n)

	for _, name := range copiedStages(final) {
		build, ok := df.stageByName(name)
		if !ok {
			return fmt.Errorf("COPY --from=%s: no such stage", name)
		}
		fmt.Printf("replaying stage %q (FROM %s) on the host\n", build.name, build.base)
		if err := replayBuildStage(build, ctxCopy, filepath.Join(work, "src")); err != nil {
			return fmt.Errorf("stage %q: %w", build.name, err)
		}
	}

	rootfs := filepath.Join(work, "rootfs")
	cfg, err := replayFinalStage(final, out, rootfs)
	if err != nil {
		return fmt.Errorf("final stage: %w", err)
	}
	if err := writeImageEnv(filepath.Join(work, "image.env"), cfg); err != nil {
		return err
	}
	return printTree(rootfs)
}

func requireEmptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read work dir: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("work dir %s is not empty", dir)
	}
	return nil
}

func copiedStages(final *stage) []string {
	var names []string
	for _, cmd := range final.commands {
		if c, ok := cmd.(*instructions.CopyCommand); ok && c.From != "" && !slices.Contains(names, c.From) {
			names = append(names, c.From)
		}
	}
	return names
}

// filterContext copies the files of ctxDir that .dockerignore admits into dst, with
// Docker's matching rules (patternmatcher, parent directories matched too).
func filterContext(ctxDir, dst string) (int, error) {
	var patterns []string
	f, err := os.Open(filepath.Join(ctxDir, ".dockerignore"))
	switch {
	case err == nil:
		patterns, err = dockerignore.ReadAll(f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("read .dockerignore: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("open .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return 0, fmt.Errorf(".dockerignore: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, fmt.Errorf("create context copy: %w", err)
	}
	count := 0
	err = filepath.WalkDir(ctxDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(ctxDir, path)
		if err != nil || rel == "." {
			return err
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("match %s: %w", rel, err)
		}
		if d.IsDir() {
			if excluded && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if excluded {
			return nil
		}
		count++
		return copyEntry(path, filepath.Join(dst, rel), nil)
	})
	if err != nil {
		return 0, fmt.Errorf("filter context: %w", err)
	}
	return count, nil
}

func replayBuildStage(st *stage, ctxCopy, workdir string) error {
	cwd := ""
	for i, cmd := range st.commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand, *instructions.EnvCommand, *instructions.LabelCommand:
			// Resolved at parse time; RUN gets them through runEnv.
		case *instructions.WorkdirCommand:
			if cwd != "" {
				return fmt.Errorf("second WORKDIR %s: the replay maps exactly one", c.Path)
			}
			cwd = workdir
			if err := os.MkdirAll(cwd, 0o755); err != nil {
				return fmt.Errorf("WORKDIR: %w", err)
			}
		case *instructions.CopyCommand:
			if cwd == "" {
				return errors.New("COPY before WORKDIR")
			}
			if c.From != "" || c.Chown != "" || c.Chmod != "" || c.Link || c.Parents || len(c.ExcludePatterns) > 0 {
				return fmt.Errorf("COPY %v: only plain COPY from the context is replayed", c.SourcePaths)
			}
			if err := copyInstruction(ctxCopy, c.SourcePaths, cwd, c.DestPath, nil); err != nil {
				return err
			}
		case *instructions.RunCommand:
			if cwd == "" {
				return errors.New("RUN before WORKDIR")
			}
			if err := replayRun(c, st.runEnv[i], cwd); err != nil {
				return err
			}
		default:
			return fmt.Errorf("instruction %s is not replayed; extend assemble.go", strings.ToUpper(cmd.Name()))
		}
	}
	return nil
}

func replayRun(c *instructions.RunCommand, env []string, cwd string) error {
	if len(c.FlagsUsed) > 0 || len(c.Files) > 0 {
		return fmt.Errorf("RUN %v: flags and heredocs are not replayed", c.CmdLine)
	}
	argv := c.CmdLine
	if c.PrependShell {
		argv = []string{"/bin/sh", "-c", strings.Join(c.CmdLine, " ")}
	}
	fmt.Printf("  RUN %s\n", strings.Join(c.CmdLine, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("RUN %v: %w", c.CmdLine, err)
	}
	return nil
}

func replayFinalStage(st *stage, out, rootfs string) (imageConfig, error) {
	cfg := imageConfig{workdir: "/", env: st.envOnly.Pairs()}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return cfg, fmt.Errorf("create rootfs: %w", err)
	}
	for _, cmd := range st.commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand, *instructions.EnvCommand, *instructions.LabelCommand:
		case *instructions.CopyCommand:
			if err := replayFinalCopy(c, out, rootfs); err != nil {
				return cfg, err
			}
		case *instructions.UserCommand:
			cfg.user = c.User
		case *instructions.WorkdirCommand:
			cfg.workdir = c.Path
		case *instructions.StopSignalCommand:
			cfg.stopSignal = c.Signal
		case *instructions.EntrypointCommand:
			cfg.entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			cfg.cmd = c.CmdLine
		case *instructions.HealthCheckCommand:
			if c.Health != nil && len(c.Health.Test) > 1 {
				cfg.health = c.Health.Test[1:]
			}
		case *instructions.ExposeCommand:
			cfg.ports = append(cfg.ports, c.Ports...)
		case *instructions.VolumeCommand:
			cfg.volumes = append(cfg.volumes, c.Volumes...)
		default:
			return cfg, fmt.Errorf("instruction %s is not replayed; extend assemble.go", strings.ToUpper(cmd.Name()))
		}
	}
	// Docker creates a missing volume mount point (root-owned) when the container starts.
	for _, v := range cfg.volumes {
		if err := os.MkdirAll(filepath.Join(rootfs, v), 0o755); err != nil {
			return cfg, fmt.Errorf("volume %s: %w", v, err)
		}
	}
	return cfg, nil
}

func replayFinalCopy(c *instructions.CopyCommand, out, rootfs string) error {
	if c.From == "" || c.Chmod != "" || c.Parents || len(c.ExcludePatterns) > 0 {
		return fmt.Errorf("COPY %v: only COPY --from=<stage> [--chown=uid:gid] is replayed", c.SourcePaths)
	}
	own := rootOwner
	if c.Chown != "" {
		var err error
		if own, err = parseNumericOwner(c.Chown); err != nil {
			return fmt.Errorf("COPY --chown=%s: %w", c.Chown, err)
		}
	}
	for _, s := range c.SourcePaths {
		clean := filepath.Clean(s)
		if clean != out && !strings.HasPrefix(clean, out+string(filepath.Separator)) {
			return fmt.Errorf("COPY --from=%s %s: source outside ${%s}; the replay only copies from there", c.From, s, outArg)
		}
	}
	return copyInstruction("/", c.SourcePaths, rootfs, c.DestPath, &own)
}

func parseNumericOwner(s string) (owner, error) {
	u, g, hasGroup := strings.Cut(s, ":")
	if !hasGroup {
		g = u
	}
	uid, err := strconv.Atoi(u)
	if err != nil {
		return owner{}, fmt.Errorf("uid %q not numeric", u)
	}
	gid, err := strconv.Atoi(g)
	if err != nil {
		return owner{}, fmt.Errorf("gid %q not numeric", g)
	}
	return owner{uid, gid}, nil
}

// copyInstruction applies COPY semantics: each source (glob allowed, relative to base) that
// is a directory has its contents copied into dest; a file goes to dest, or into dest when
// dest ends in "/" or there are several sources. dest is relative to root; own nil keeps
// the copying user (the replay of build-stage COPY), otherwise every copied entry gets it.
func copyInstruction(base string, sources []string, root, dest string, own *owner) error {
	destPath := filepath.Join(root, dest)
	intoDir := strings.HasSuffix(dest, "/") || dest == "." || len(sources) > 1
	for _, s := range sources {
		matches, err := filepath.Glob(filepath.Join(base, s))
		if err != nil {
			return fmt.Errorf("COPY %s: %w", s, err)
		}
		if len(matches) == 0 {
			return fmt.Errorf("COPY %s: no such file in the build context", s)
		}
		for _, m := range matches {
			info, err := os.Stat(m)
			if err != nil {
				return fmt.Errorf("COPY %s: %w", m, err)
			}
			target := destPath
			if info.IsDir() {
				err = copyDirContents(m, destPath, own)
			} else {
				if intoDir || len(matches) > 1 {
					target = filepath.Join(destPath, filepath.Base(m))
				}
				err = copyEntry(m, target, own)
			}
			if err != nil {
				return fmt.Errorf("COPY %s: %w", s, err)
			}
		}
	}
	return nil
}

func copyDirContents(src, dst string, own *owner) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		return copyEntry(path, filepath.Join(dst, rel), own)
	})
}

// copyEntry copies one file, directory (not its contents) or symlink, keeping the mode
// bits; with own set it also sets the owner (the copy runs as root in CI).
func copyEntry(src, dst string, own *owner) error {
	info, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case info.IsDir():
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
	case info.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, dst); err != nil {
			return err
		}
	case info.Mode().IsRegular():
		if err := copyFile(src, dst); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported file type %v", src, info.Mode().Type())
	}
	if info.Mode()&fs.ModeSymlink == 0 {
		if err := os.Chmod(dst, info.Mode().Perm()); err != nil {
			return err
		}
	}
	if own != nil {
		return os.Lchown(dst, own.uid, own.gid)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func writeImageEnv(path string, cfg imageConfig) error {
	var b strings.Builder
	b.WriteString("# Runtime configuration of the final image stage, written by dockercheck assemble.\n")
	fmt.Fprintf(&b, "IMAGE_USER=%s\n", shellQuote(cfg.user))
	fmt.Fprintf(&b, "IMAGE_WORKDIR=%s\n", shellQuote(cfg.workdir))
	fmt.Fprintf(&b, "IMAGE_STOPSIGNAL=%s\n", shellQuote(cfg.stopSignal))
	for _, arr := range []struct {
		name string
		vals []string
	}{
		{"IMAGE_ENV", cfg.env},
		{"IMAGE_ENTRYPOINT", cfg.entrypoint},
		{"IMAGE_CMD", cfg.cmd},
		{"IMAGE_HEALTHCHECK", cfg.health},
		{"IMAGE_EXPOSE", cfg.ports},
		{"IMAGE_VOLUMES", cfg.volumes},
	} {
		quoted := make([]string, len(arr.vals))
		for i, v := range arr.vals {
			quoted[i] = shellQuote(v)
		}
		fmt.Fprintf(&b, "%s=(%s)\n", arr.name, strings.Join(quoted, " "))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write image.env: %w", err)
	}
	return nil
}

// shellQuote quotes s for bash: single-quoted, an embedded quote written as the four characters quote, backslash, quote, quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printTree lists the image's files (mode, owner, size, path) and their total size, which
// is the uncompressed size of the single-layer image.
func printTree(rootfs string) error {
	var total int64
	fmt.Println("image file tree:")
	err := filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, path)
		uid, gid := fileOwner(info)
		size := int64(0)
		if info.Mode().IsRegular() {
			size = info.Size()
			total += size
		}
		fmt.Printf("  %s %5d:%-5d %10d  /%s\n", info.Mode(), uid, gid, size, filepath.ToSlash(strings.TrimPrefix(rel, ".")))
		return nil
	})
	if err != nil {
		return fmt.Errorf("list rootfs: %w", err)
	}
	fmt.Printf("image content: %d bytes (%.1f MiB)\n", total, float64(total)/(1<<20))
	return nil
}
