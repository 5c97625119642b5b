//go:build !unix

package redistest

// Pause needs SIGSTOP, which this platform lacks: it skips the test.
func (s *Server) Pause() {
	s.t.Helper()
	s.t.Skip("redistest: Pause needs SIGSTOP (unix only)")
}

// Resume does nothing where Pause cannot pause.
func (s *Server) Resume() {}
