//go:build !linux

package main

import "syscall"

// childProcAttr: without Pdeathsig, an SE outlives an interrupted run; stop() still ends it
// on every normal path.
func childProcAttr() *syscall.SysProcAttr { return nil }
