package procs

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/loopback"
)

// ModuleRoot is the directory of the go.mod of the current module: the
// harnesses build ./cmd/caddy from there, so they must run inside it.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run %s from inside the caddy-voipnow-pce module", filepath.Base(os.Args[0]))
	}
	return filepath.Dir(gomod), nil
}

// BuildCaddy builds ./cmd/caddy of the module at root (standard modules
// plus voipnow_pce) into dir, which it creates, and returns the binary's
// path. Go's build cache makes a second build a link at most.
func BuildCaddy(ctx context.Context, root, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// Caddy is one running Caddy process.
type Caddy struct {
	Name   string // as given to StartCaddy
	Base   string // the site: http://127.0.0.1:port
	Admin  string // the admin endpoint: http://127.0.0.1:adminport
	Config string // the Caddyfile, for a reload through Admin + "/load"
	Proc   *Child
}

// caddyfile is one instance's configuration: a site on port proxying to
// backend, with voipnow_pce (the lines of gateway, indented) in front
// unless gateway is empty. Both harnesses compare or fault instances that
// differ only in gateway, so everything else is fixed here.
func caddyfile(adminPort, port int, backend, gateway string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	grace_period 1s
	log {
		output stderr
		level WARN
	}
}

http://127.0.0.1:%d {
`, adminPort, port)
	if gateway != "" {
		b.WriteString("\tvoipnow_pce {\n")
		for line := range strings.SplitSeq(strings.TrimSpace(gateway), "\n") {
			b.WriteString("\t\t" + strings.TrimSpace(line) + "\n")
		}
		b.WriteString("\t}\n")
	}
	fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", backend)
	return b.String()
}

// StartCaddy writes the Caddyfile of instance name (see caddyfile) to
// dir/Caddyfile.<name>, runs `caddy run` on it in cs with its log in
// dir/<name>.log, and waits until the site answers.
func StartCaddy(ctx context.Context, cs *Set, bin, dir, name, backend, gateway string) (*Caddy, error) {
	adminPort, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	cfg := caddyfile(adminPort, port, backend, gateway)
	path := filepath.Join(dir, "Caddyfile."+name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	// Caddy's data and config directories inside dir, so that nothing is
	// written to the user's.
	env := []string{
		"XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config"),
	}
	c, err := cs.Start("caddy "+name, filepath.Join(dir, name+".log"), env, bin,
		"run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	t := &Caddy{Name: name, Base: fmt.Sprintf("http://127.0.0.1:%d", port),
		Admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), Config: cfg, Proc: c}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	err = WaitFor(ctx, c, 30*time.Second, "caddy "+name, func() error {
		// A GET is not the gateway's route: every instance proxies it to
		// the backend, with or without voipnow_pce.
		res, err := client.Get(t.Base + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}
