package procs

import "syscall"

// sysProcAttr puts a child in its own process group (a Ctrl-C in the
// terminal reaches only the harness, which stops the children in order)
// and has the kernel kill it if the harness dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
