//go:build unix

package redistest

import (
	"bufio"
	"errors"
	"net"
	"testing"
	"time"
)

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Pause()
	s.Pause() // idempotent

	// The kernel still accepts the connection, but nothing answers.
	err := ping(s.Addr())
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to a paused server: got %v, want a timeout", err)
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("Do(PING) answered while paused")
	}

	// A command sent while paused is answered after Resume.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	s.Resume()
	s.Resume() // idempotent
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("pending PING after Resume: %q, %v", line, err)
	}
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}

	// Stop on a paused server must not hang, and Restart brings it back.
	s.Pause()
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung on a paused server")
	}
	if err := ping(s.Addr()); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
	s.Resume() // on a stopped server: nothing
	s.Restart()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("PING after Restart of a paused-then-stopped server: %v", err)
	}
	s.Pause() // left paused: the test's cleanup must still kill it
}
