package main

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the numeric owner of a file (Linux stat), -1 when unknown.
func fileOwner(info fs.FileInfo) (uid, gid int) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1
	}
	return int(st.Uid), int(st.Gid)
}
