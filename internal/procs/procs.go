// Package procs runs the child processes of the harnesses (cmd/pce-load,
// cmd/pce-chaos): Caddy built from this module and private redis-servers,
// each with its output in a log file, all stopped when the harness is
// done, so that no run leaves a process behind.
package procs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is one subprocess that the harness owns. Its output goes to a log
// file, which Tail reads for error messages.
type Child struct {
	Name string // for messages: "caddy plain", "redis-master"

	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been waited for
	once    sync.Once     // the first of Stop and Kill ends the process
}

// Set is the children of a harness (or of one of its scenarios). StopAll
// stops them in reverse order of start, when the set's work is done and
// when the harness exits (also on Ctrl-C and SIGTERM). The zero Set is
// ready to use.
type Set struct {
	mu   sync.Mutex
	list []*Child
}

// Start runs bin with args, the harness's environment plus env, and its
// output appended to logPath: a child restarted under the same log keeps
// its earlier output there. The child is in its own process group and, on
// Linux, killed by the kernel if the harness dies (see sysProcAttr).
func (cs *Set) Start(name, logPath string, env []string, bin string, args ...string) (*Child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
	return c, nil
}

// StopAll stops every child (see Child.Stop), the last started first, and
// forgets them.
func (cs *Set) StopAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].Stop()
	}
}

// Stop ends the child politely: SIGCONT (a paused child could not act on
// the next signal), SIGTERM, then SIGKILL if it has not exited within a
// grace period. It returns once the child has exited.
func (c *Child) Stop() {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// Kill is a crash: SIGKILL, no shutdown. It returns once the child has
// exited.
func (c *Child) Kill() {
	c.once.Do(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
}

// Signal sends s to the child, for faults such as SIGSTOP.
func (c *Child) Signal(s syscall.Signal) error { return c.cmd.Process.Signal(s) }

// Exited reports whether the child has exited (for any reason).
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Tail is the end of the child's log, for error messages.
func (c *Child) Tail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// RSSKiB is the child's resident set size from /proc (Linux), 0 elsewhere
// or once it has exited.
func (c *Child) RSSKiB() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// WaitFor polls ready until it succeeds, the child c exits, or within
// passes; what names the wait in the error. c may be nil to wait on
// something no single child stands for (a Sentinel set agreeing). On
// failure the error carries the end of c's log, which usually says why.
func WaitFor(ctx context.Context, c *Child, within time.Duration, what string, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if c != nil && c.Exited() {
			return fmt.Errorf("%s exited:\n%s", c.Name, c.Tail())
		}
		if time.Now().After(deadline) {
			tail := ""
			if c != nil {
				tail = "\n" + c.Tail()
			}
			return fmt.Errorf("%s: not ready within %s: %v%s", what, within, err, tail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
