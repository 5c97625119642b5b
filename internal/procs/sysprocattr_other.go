//go:build !linux

package procs

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; the harness
// stops its children on exit and on Ctrl-C.
func sysProcAttr() *syscall.SysProcAttr { return nil }
