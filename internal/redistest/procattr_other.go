//go:build !linux

package redistest

import "os/exec"

// dieWithParent is a Linux nicety (Pdeathsig); elsewhere only the test's
// cleanups stop the server.
func dieWithParent(*exec.Cmd) {}
