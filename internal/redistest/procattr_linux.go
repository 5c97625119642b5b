package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel SIGKILL the server if the test binary dies
// without running its cleanups (a -timeout panic, a SIGPIPE, a kill), so
// no redis-server outlives its test.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
