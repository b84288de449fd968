package main

import "syscall"

// childProcAttr makes the kernel kill an SE when this program dies, so an interrupted run
// leaves no SE behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
