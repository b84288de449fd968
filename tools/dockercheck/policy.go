// Image policy of the Storage Element (issue "Ship it"), checked on the parsed Dockerfile:
//
//   - the final stage is FROM scratch and copies files only from one build stage;
//   - the build stage compiles statically and reproducibly: CGO_ENABLED=0, -trimpath,
//     version stamped through -ldflags -X main.version=;
//   - USER is numeric uid:gid and not root (Kubernetes runAsNonRoot can verify only numbers);
//   - EXPOSE 8010, VOLUME covers SE_DATA_DIR and SE_WAL_DIR as set by ENV;
//   - ENTRYPOINT is exec form, HEALTHCHECK is exec form running `<entrypoint> healthcheck`
//     (scratch has no shell, so a shell-form command could never run).
package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

const wantPort = "8010"

func checkPolicy(df *dockerfile) []string {
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	final := df.final()
	if final.base != "scratch" {
		fail("final stage must be FROM scratch, is FROM %s", final.base)
	}

	var user string
	var entrypoint, health []string
	var ports, volumes []string
	fromStages := map[string]bool{}
	for _, cmd := range final.commands {
		switch c := cmd.(type) {
		case *instructions.CopyCommand:
			if c.From == "" {
				fail("final stage COPY %v takes files from the build context; take them from the build stage", c.SourcePaths)
			}
			fromStages[c.From] = true
		case *instructions.AddCommand:
			fail("final stage uses ADD; use COPY --from the build stage")
		case *instructions.RunCommand:
			fail("final stage has RUN; scratch has no shell")
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				fail("ENTRYPOINT must be exec form (JSON array)")
			}
			entrypoint = c.CmdLine
		case *instructions.HealthCheckCommand:
			if c.Health != nil {
				health = c.Health.Test
			}
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		}
	}

	if len(fromStages) != 1 {
		fail("final stage must copy from exactly one build stage, copies from %d", len(fromStages))
	}
	for name := range fromStages {
		build, ok := df.stageByName(name)
		if !ok {
			fail("COPY --from=%s names no stage of this Dockerfile", name)
			continue
		}
		problems = append(problems, checkBuildStage(build)...)
	}

	if err := checkNumericNonRoot(user); err != nil {
		fail("USER: %v", err)
	}
	if !slices.Contains(ports, wantPort) && !slices.Contains(ports, wantPort+"/tcp") {
		fail("EXPOSE %s missing (have %v)", wantPort, ports)
	}
	for _, key := range []string{"SE_DATA_DIR", "SE_WAL_DIR"} {
		dir, ok := final.envOnly.Get(key)
		if !ok {
			fail("ENV %s not set in the final stage", key)
			continue
		}
		if !slices.Contains(volumes, dir) {
			fail("VOLUME does not declare %s=%s (have %v)", key, dir, volumes)
		}
	}
	if len(entrypoint) == 0 {
		fail("ENTRYPOINT missing")
	}
	want := append([]string{"CMD"}, entrypoint...)
	want = append(want, "healthcheck")
	if !slices.Equal(health, want) {
		fail("HEALTHCHECK must be %q (exec form, the binary's own probe), is %q", want, health)
	}
	return problems
}

func checkBuildStage(build *stage) []string {
	var goBuild string
	for _, cmd := range build.commands {
		run, ok := cmd.(*instructions.RunCommand)
		if !ok {
			continue
		}
		line := strings.Join(run.CmdLine, " ")
		if strings.Contains(line, "go build") {
			goBuild = line
		}
	}
	if goBuild == "" {
		return []string{fmt.Sprintf("build stage %q has no RUN with `go build`", build.name)}
	}
	var problems []string
	for _, need := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version="} {
		if !strings.Contains(goBuild, need) {
			problems = append(problems, fmt.Sprintf("go build step lacks %s: %s", need, goBuild))
		}
	}
	return problems
}

func checkNumericNonRoot(user string) error {
	if user == "" {
		return fmt.Errorf("not set; the image would run as root")
	}
	uid, gid, hasGroup := strings.Cut(user, ":")
	if !hasGroup {
		return fmt.Errorf("%q: want numeric uid:gid", user)
	}
	for _, part := range []string{uid, gid} {
		n, err := strconv.Atoi(part)
		if err != nil {
			return fmt.Errorf("%q: want numeric uid:gid", user)
		}
		if n == 0 {
			return fmt.Errorf("%q: root", user)
		}
	}
	return nil
}
