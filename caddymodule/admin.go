package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/tokencache"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves POST /voipnow_pce/revoke on Caddy's admin endpoint: it
// purges a token from every live token cache of this process and from
// Redis, and tells every other instance sharing the Redis to drop it too.
type adminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.voipnow_pce",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision takes the logger.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	return nil
}

// Routes returns the revocation route.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/voipnow_pce/revoke",
		Handler: caddy.AdminHandlerFunc(a.handleRevoke),
	}}
}

// revokeRequest is the body of POST /voipnow_pce/revoke: exactly one of
// the two.
type revokeRequest struct {
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"`
}

// revokeAnswer summarises what was purged.
type revokeAnswer struct {
	// Caches is how many token caches of this process were purged (one per
	// distinct cache configuration).
	Caches int `json:"caches"`
	// Fingerprints are the token's fingerprints in those caches, as logs
	// show them.
	Fingerprints []string `json:"fingerprints"`
	// Memory and Redis count the entries removed from each tier.
	Memory int `json:"memory"`
	Redis  int `json:"redis"`
	// Recorded counts the caches whose revocation is in the record every
	// instance sharing their Redis reads.
	Recorded int `json:"recorded"`
	// Error says what could not be done, when the revocation is
	// incomplete (503): the counts above still say what was.
	Error string `json:"error,omitempty"`
}

// repeatedMember reports whether the top-level JSON object in b names a
// member twice, in any letter case (encoding/json would keep the last one,
// matching names case-insensitively): {"token":"a","token":"b"} must not
// revoke one of them silently.
func repeatedMember(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false // not an object: the decoder below says so
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return false
		}
		name = strings.ToLower(name)
		if seen[name] {
			return true
		}
		seen[name] = true
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return false
		}
	}
	return false
}

func (a *adminAPI) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed: use POST")}
	}
	var req revokeRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || repeatedMember(body) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`body must be {"token":"..."} or {"fingerprint":"..."}, each member once`)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`body must be {"token":"..."} or {"fingerprint":"..."}`)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`body must be one JSON object, {"token":"..."} or {"fingerprint":"..."}`)}
	}
	if (req.Token == "") == (req.Fingerprint == "") {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`give exactly one of "token" and "fingerprint"`)}
	}
	req.Fingerprint = strings.ToLower(req.Fingerprint)
	if req.Fingerprint != "" && !tokencache.ValidFingerprint(req.Fingerprint) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("fingerprint must be the 12 to 64 hex characters the logs show")}
	}

	ans := revokeAnswer{Fingerprints: []string{}}
	var firstErr error
	sharedCaches.Range(func(_, value any) bool {
		sc := value.(*sharedCache)
		res, err := sc.cache.Revoke(r.Context(), req.Token, req.Fingerprint)
		ans.Caches++
		ans.Fingerprints = append(ans.Fingerprints, res.Fingerprint)
		ans.Memory += res.Memory
		ans.Redis += res.Redis
		if res.Recorded {
			ans.Recorded++
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return true
	})
	if ans.Caches == 0 {
		// Nothing here could purge anything, nor tell other instances.
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("no voipnow_pce handler is loaded in this Caddy: nothing was revoked")}
	}
	a.logger.Info("token revoked", zap.Strings("fingerprints", ans.Fingerprints),
		zap.Int("memory", ans.Memory), zap.Int("redis", ans.Redis), zap.Int("recorded", ans.Recorded))
	status := http.StatusOK
	if firstErr != nil {
		// The local tier is purged; Redis or the other instances may not be.
		status = http.StatusServiceUnavailable
		ans.Error = "revocation incomplete: " + firstErr.Error()
		a.logger.Error("revocation incomplete", zap.Error(firstErr))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(ans)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
