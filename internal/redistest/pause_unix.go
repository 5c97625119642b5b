//go:build unix

package redistest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Pause freezes the server with SIGSTOP: it keeps its port and the kernel
// still accepts connections, but nothing is answered, as with a hung
// Redis. Commands sent meanwhile are answered after Resume. Stop (SIGKILL)
// works on a paused server. Pause waits until the process is really
// stopped (on Linux, where /proc tells); pausing a paused or stopped
// server does nothing.
func (s *Server) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.paused {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: SIGSTOP redis-server on port %d: %v", s.port, err)
	}
	s.paused = true
	waitProcState(s.cmd.Process.Pid, true)
}

// Resume lets a paused server run again with SIGCONT and waits until it
// runs. Resuming a server that is not paused does nothing.
func (s *Server) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || !s.paused {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("redistest: SIGCONT redis-server on port %d: %v", s.port, err)
	}
	s.paused = false
	waitProcState(s.cmd.Process.Pid, false)
}

// waitProcState waits (briefly) until /proc says pid is stopped or not.
// Without /proc (not Linux) it returns at once: the signal is on its way.
func waitProcState(pid int, stopped bool) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// pid (comm) S ...: the state follows the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) == 0 {
			return
		}
		if (f[0] == "T") == stopped {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
