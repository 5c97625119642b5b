package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
)

// The RFC 6750 challenges of a 401: without a token, and for a bad one.
const (
	challenge             = `Bearer realm="uapi"`
	challengeInvalidToken = `Bearer realm="uapi", error="invalid_token"`
)

// ServeHTTP intercepts the phoneCallEvents update request and passes every
// other request to next untouched. The checks run in the contract's order:
// authenticate, check the URI, authorize, check and normalize the payload,
// forward.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	method, methodErr := effectiveMethod(r)
	if methodErr == nil && method != http.MethodPut {
		return next.ServeHTTP(w, r)
	}
	route, onRoute, uriErr := h.router.Match(r.URL.EscapedPath())
	if !onRoute {
		return next.ServeHTTP(w, r)
	}
	if methodErr != nil && uriErr == nil {
		// Overrides that disagree: the backend's reading is unknown.
		uriErr = methodErr
	}
	if uriErr == nil && strings.IndexByte(r.RequestURI, '#') >= 0 {
		// A raw '#' in the request target: clients never send one, and
		// backends disagree on what follows it.
		uriErr = pce.ErrRequestInvalid
	}
	return h.serveRoute(w, r, next, route, uriErr)
}

func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, route pce.Route, uriErr *pce.Error) (err error) {
	tw := &trackingWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.logger.Error("voipnow_pce: unexpected failure", zap.Any("panic", p))
			if !tw.wrote {
				h.reject(tw, pce.ErrInternal)
			}
			err = nil
		}
	}()

	// 1. Authenticate.
	token, fromQuery, claims, authErr := h.authenticate(r)
	if authErr != nil {
		return h.reject(tw, authErr)
	}
	// 2. The URI fragment.
	if uriErr != nil {
		return h.reject(tw, uriErr)
	}
	// 3. Authorize, on every request: the caches hold answers, not decisions.
	if e := h.policy.Authorize(route, claims.Scopes, claims.User); e != nil {
		return h.reject(tw, e)
	}
	setUserPlaceholders(r, claims)
	// 4. The payload.
	body, e := h.normalizedPayload(r, route)
	if e != nil {
		return h.reject(tw, e)
	}
	// 5. Forward the canonical request.
	h.canonicalize(r, route, token, fromQuery, body)
	if err := next.ServeHTTP(tw, r); err != nil {
		if tw.wrote {
			countDecision("forwarded")
			return err
		}
		if c := h.logger.Check(zapcore.ErrorLevel, "voipnow_pce: backend unavailable"); c != nil {
			c.Write(zap.Error(err))
		}
		countDecision(pce.ErrBackendUnavailable.Code)
		h.writeError(tw, pce.ErrBackendUnavailable)
		return nil
	}
	countDecision("forwarded")
	return nil
}

// effectiveMethod is the method the backend would act on (pce.EffectiveMethod):
// the request method in any letter case, overridden by a method-override
// header (in any spelling a CGI backend reads as one) or by _method in the
// query, in every spelling PHP reads as _method.
func effectiveMethod(r *http.Request) (string, *pce.Error) {
	var overrides []string
	for name, vals := range r.Header {
		if pce.IsOverrideHeader(name) {
			overrides = append(overrides, vals...)
		}
	}
	return pce.EffectiveMethod(r.Method, overrides, r.URL.RawQuery, nil)
}

// authenticate finds the token and looks it up. A failure is the
// documented error: 401 for a missing or bad token, 503 when the
// introspection endpoint gives no answer.
func (h *Handler) authenticate(r *http.Request) (token string, fromQuery bool, claims *introspect.Claims, e *pce.Error) {
	var queryTokens []string
	if pce.MayHoldToken(r.URL.RawQuery) {
		queryTokens = pce.QueryTokens(r.URL.RawQuery)
	}
	token, fromQuery, given, ok := pce.ExtractToken(r.Header.Values("Authorization"), queryTokens)
	if !ok {
		return "", false, nil, authError(given)
	}
	claims, err := h.lookup.Introspect(r.Context(), token)
	if err != nil {
		// The endpoint refusing the gateway itself (4xx) is a configuration
		// fault: an error; an endpoint that is down is a warning.
		level := zapcore.WarnLevel
		if errors.Is(err, introspect.ErrRefused) {
			level = zapcore.ErrorLevel
		}
		if c := h.logger.Check(level, "voipnow_pce: token could not be checked"); c != nil {
			c.Write(zap.String("token_fingerprint", h.shared.cache.Fingerprint(token)), zap.Error(err))
		}
		if errors.Is(err, introspect.ErrUnavailable) {
			return "", false, nil, pce.ErrServiceUnavailable
		}
		return "", false, nil, pce.ErrInternal
	}
	if !claims.Valid(time.Now()) {
		return "", false, nil, authError(true)
	}
	return token, fromQuery, claims, nil
}

func authError(given bool) *pce.Error {
	if given {
		return pce.ErrInvalidToken
	}
	return pce.ErrAccessDenied
}

// normalizedPayload reads at most MaxBody bytes into a pooled buffer and
// returns the canonical body in a fresh slice: the transport may still read
// a forwarded body after the handler returns, so it is never pooled.
func (h *Handler) normalizedPayload(r *http.Request, route pce.Route) ([]byte, *pce.Error) {
	if r.ContentLength > h.maxBody {
		return nil, pce.ErrPayloadTooLarge
	}
	in := bufPool.Get().(*readBuf)
	defer putBuffer(in)
	if r.Body != nil {
		in.lim = io.LimitedReader{R: r.Body, N: h.maxBody + 1}
		n, err := in.ReadFrom(&in.lim)
		if n > h.maxBody {
			return nil, pce.ErrPayloadTooLarge
		}
		if err != nil {
			return nil, pce.ErrPayloadInvalid
		}
	}
	// The canonical form is at most 8 bytes longer: quotes around 4 numbers.
	return pce.AppendNormalized(make([]byte, 0, in.Len()+8), in.Bytes(), route, h.payloadRules)
}

// canonicalize turns r into the request the backend sees: canonical path,
// the token in the Authorization header, the canonical JSON body.
func (h *Handler) canonicalize(r *http.Request, route pce.Route, token string, fromQuery bool, body []byte) {
	path := h.router.CanonicalPath(route)
	r.URL.Path, r.URL.RawPath = path, path
	r.Method = http.MethodPut
	for name := range r.Header {
		if pce.IsOverrideHeader(name) {
			delete(r.Header, name)
		}
	}
	// The query byte for byte, less the token and _method pairs.
	if q := pce.CanonicalQuery(r.URL.RawQuery); q != r.URL.RawQuery {
		r.URL.RawQuery = q
		r.URL.ForceQuery = false
	}
	stripHopByHop(r)
	if _, ok := r.Header["Authorization"]; fromQuery || !ok {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	// One backing array for both values (Header.Set allocates one each).
	vals := make([]string, 2)
	vals[0], vals[1] = "application/json", strconv.Itoa(len(body))
	r.Header["Content-Type"], r.Header["Content-Length"] = vals[0:1:1], vals[1:2:2]
	r.TransferEncoding = nil
	r.Trailer = nil
	r.ContentLength = int64(len(body))
	r.Body = newForwardBody(body)
	r.GetBody = func() (io.ReadCloser, error) { return newForwardBody(body), nil }
	// Caddy's {http.request.uri} and reverse_proxy's logs read RequestURI:
	// it must not keep a query token either.
	r.RequestURI = r.URL.RequestURI()
}

// hopByHop are the headers of the client's connection and body framing:
// none is forwarded (the gateway re-frames the body), so none can be aimed
// at the gateway's own headers.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer",
	"Upgrade", "Expect", "Transfer-Encoding", "Content-Encoding"}

// stripHopByHop removes every header a Connection header names (a client
// naming Authorization or Content-Type there would have the proxy strip
// the gateway's own) and the hop-by-hop headers. The canonical headers are
// set after it.
func stripHopByHop(r *http.Request) {
	for _, v := range r.Header["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				r.Header.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		delete(r.Header, name)
	}
}

// reject answers with e and counts the decision.
func (h *Handler) reject(w http.ResponseWriter, e *pce.Error) error {
	countDecision(e.Code)
	h.writeError(w, e)
	return nil
}

// writeError writes the legacy API's error body for e.
func (h *Handler) writeError(w http.ResponseWriter, e *pce.Error) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(e.Body())))
	switch e {
	case pce.ErrAccessDenied:
		hdr.Set("WWW-Authenticate", challenge)
	case pce.ErrInvalidToken:
		hdr.Set("WWW-Authenticate", challengeInvalidToken)
	case pce.ErrServiceUnavailable:
		hdr.Set("Retry-After", defaultRetryAfter)
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.Body())
}

// setUserPlaceholders publishes the caller's identity the way caddyauth
// does, for access logs and header_up.
func setUserPlaceholders(r *http.Request, claims *introspect.Claims) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.auth.user.id", claims.User)
	repl.Set("http.auth.user.scope", strings.Join(claims.Scopes, " "))
}

// trackingWriter remembers whether the next handler began its answer, so a
// failure before that can still be answered with backend_unavailable.
type trackingWriter struct {
	caddyhttp.ResponseWriterWrapper
	wrote bool
}

func (t *trackingWriter) WriteHeader(status int) {
	if status >= 200 || status == http.StatusSwitchingProtocols {
		t.wrote = true
	}
	t.ResponseWriterWrapper.WriteHeader(status)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriterWrapper.Write(b)
}

func (t *trackingWriter) ReadFrom(r io.Reader) (int64, error) {
	t.wrote = true
	return t.ResponseWriterWrapper.ReadFrom(r)
}

// forwardBody is a forwarded request body in one allocation (where
// io.NopCloser(bytes.NewReader(b)) makes two). Never pooled: the transport
// may read it after the handler returns.
type forwardBody struct{ bytes.Reader }

func newForwardBody(b []byte) *forwardBody {
	fb := new(forwardBody)
	fb.Reset(b)
	return fb
}

func (*forwardBody) Close() error { return nil }

// readBuf is a buffer a request body is read into, with its limit reader.
type readBuf struct {
	bytes.Buffer
	lim io.LimitedReader
}

// bufPool holds the buffers request bodies are read into.
var bufPool = sync.Pool{New: func() any { return new(readBuf) }}

func putBuffer(b *readBuf) {
	b.lim = io.LimitedReader{} // drop the request's body
	if b.Cap() > 1<<20 {
		return
	}
	b.Reset()
	bufPool.Put(b)
}

// Interface guards
var _ caddyhttp.MiddlewareHandler = (*Handler)(nil)
