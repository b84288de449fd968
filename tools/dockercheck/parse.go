// Dockerfile model with build arguments resolved the way BuildKit resolves them:
//   - ARGs declared before the first FROM are global and visible to FROM lines only;
//   - a stage's `ARG NAME` (no default) imports the global value, `ARG NAME=default` sets one;
//   - a -build-arg overrides the value of any ARG that is declared;
//   - ENV and ARG values are expanded into later instructions of the same stage.
//
// RUN command lines are deliberately left unexpanded: the shell expands them, from the
// environment the ARG/ENV values are exported into (see assemble.go).
package main

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

type dockerfile struct {
	stages []stage
}

type stage struct {
	name     string
	base     string // FROM image or stage name, ARGs expanded
	commands []instructions.Command
	// env holds the stage's ARG and ENV values as they stand after its last instruction.
	env *orderedEnv
	// envOnly holds just the ENV values (what a container of this stage would see).
	envOnly *orderedEnv
	// runEnv holds, per index into commands of a RUN, the ARG and ENV values in force
	// at that RUN as KEY=VALUE (what BuildKit exports to the RUN's process).
	runEnv map[int][]string
}

// orderedEnv implements shell.EnvGetter and keeps declaration order for output.
type orderedEnv struct {
	keys []string
	vals map[string]string
}

func newOrderedEnv() *orderedEnv { return &orderedEnv{vals: map[string]string{}} }

func (e *orderedEnv) Get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }
func (e *orderedEnv) Keys() []string              { return slices.Clone(e.keys) }

func (e *orderedEnv) Set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// Pairs returns KEY=VALUE strings in declaration order.
func (e *orderedEnv) Pairs() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

func (d *dockerfile) stageByName(name string) (*stage, bool) {
	for i := range d.stages {
		if d.stages[i].name == name {
			return &d.stages[i], true
		}
	}
	return nil, false
}

func (d *dockerfile) final() *stage { return &d.stages[len(d.stages)-1] }

// parseDockerfile parses src and resolves ARG/ENV expansion with the given build args
// (nil means the Dockerfile's defaults).
func parseDockerfile(src []byte, bargs map[string]string) (*dockerfile, error) {
	ast, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("parse dockerfile: %w", err)
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("parse instructions: %w", err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("dockerfile has no stage")
	}
	lex := shell.NewLex(ast.EscapeToken)

	global := newOrderedEnv()
	for _, meta := range metaArgs {
		for _, kv := range meta.Args {
			v, err := argValue(kv, bargs, nil, global, lex)
			if err != nil {
				return nil, err
			}
			global.Set(kv.Key, v)
		}
	}

	df := &dockerfile{}
	for _, st := range stages {
		base, _, err := lex.ProcessWord(st.BaseName, global)
		if err != nil {
			return nil, fmt.Errorf("expand FROM %s: %w", st.BaseName, err)
		}
		out := stage{name: st.Name, base: base, env: newOrderedEnv(), envOnly: newOrderedEnv(), runEnv: map[int][]string{}}
		if err := resolveStage(&out, st.Commands, bargs, global, lex); err != nil {
			return nil, fmt.Errorf("stage %q: %w", st.Name, err)
		}
		df.stages = append(df.stages, out)
	}
	return df, nil
}

func resolveStage(out *stage, cmds []instructions.Command, bargs map[string]string, global *orderedEnv, lex *shell.Lex) error {
	expand := func(word string) (string, error) {
		v, _, err := lex.ProcessWord(word, out.env)
		return v, err
	}
	for _, cmd := range cmds {
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				v, err := argValue(kv, bargs, out.env, global, lex)
				if err != nil {
					return err
				}
				out.env.Set(kv.Key, v)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				v, err := expand(kv.Value)
				if err != nil {
					return fmt.Errorf("expand ENV %s: %w", kv.Key, err)
				}
				out.env.Set(kv.Key, v)
				out.envOnly.Set(kv.Key, v)
			}
		case *instructions.RunCommand:
			// Left as written: the shell expands it (see package comment).
			out.runEnv[len(out.commands)] = out.env.Pairs()
		case instructions.SupportsSingleWordExpansion:
			if err := c.Expand(expand); err != nil {
				return fmt.Errorf("expand %s: %w", cmd.Name(), err)
			}
		}
		out.commands = append(out.commands, cmd)
	}
	return nil
}

// argValue resolves one ARG declaration: build arg, then its own default, then the
// global value of the same name, else empty.
func argValue(kv instructions.KeyValuePairOptional, bargs map[string]string, scope, global *orderedEnv, lex *shell.Lex) (string, error) {
	if v, ok := bargs[kv.Key]; ok {
		return v, nil
	}
	if kv.Value != nil {
		env := global
		if scope != nil {
			env = scope
		}
		v, _, err := lex.ProcessWord(*kv.Value, env)
		if err != nil {
			return "", fmt.Errorf("expand ARG %s: %w", kv.Key, err)
		}
		return v, nil
	}
	if v, ok := global.Get(kv.Key); ok && scope != nil {
		return v, nil
	}
	return "", nil
}
