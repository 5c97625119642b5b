// Command pce-sim simulates the legacy side of the gateway so that the
// whole stack runs on one machine with no other services: a VoipNow UAPI
// backend that stores phone call events in memory, and an OAuth 2.0
// identity provider that issues, introspects and revokes opaque tokens.
//
//	pce-sim [-backend 127.0.0.1:9080] [-idp 127.0.0.1:9096] [-clients gateway:gateway-secret,app:app-secret]
//
// An empty -backend or -idp disables that part. It stops on SIGINT or
// SIGTERM. It logs request lines (method and path) to stderr, never
// headers, query strings, bodies or tokens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetOutput(os.Stderr)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pce-sim:", err)
		os.Exit(1)
	}
}

// run starts the configured listeners, prints one line per listener to
// stdout, serves until ctx is done and then shuts down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pce-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backendAddr := fs.String("backend", "127.0.0.1:9080", "simulated UAPI backend listen address (empty: disabled)")
	idpAddr := fs.String("idp", "127.0.0.1:9096", "simulated identity provider listen address (empty: disabled)")
	clientList := fs.String("clients", "gateway:gateway-secret,app:app-secret", "known OAuth clients, id:secret,...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	clients, err := parseClients(*clientList)
	if err != nil {
		return err
	}
	if *backendAddr == "" && *idpAddr == "" {
		return errors.New("both -backend and -idp are disabled: nothing to do")
	}

	var servers []*http.Server
	errc := make(chan error, 2)
	start := func(name, addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		servers = append(servers, srv)
		fmt.Fprintf(stdout, "pce-sim: %s listening on http://%s\n", name, ln.Addr())
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
		return nil
	}
	if *backendAddr != "" {
		err = start("backend", *backendAddr, newBackend())
	}
	if err == nil && *idpAddr != "" {
		err = start("idp", *idpAddr, newIDP(clients))
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-errc:
		}
	}

	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	return err
}

// parseClients reads "id:secret,id:secret".
func parseClients(s string) (map[string]string, error) {
	clients := map[string]string{}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, secret, ok := strings.Cut(item, ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("-clients: entry %d is not id:secret", i+1)
		}
		clients[id] = secret
	}
	return clients, nil
}
