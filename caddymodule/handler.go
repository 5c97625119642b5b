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

// ServeHTTP guards the phoneCallEvents resource and passes every other
// request to next untouched. pce decides what a request is (Resource.Match);
// an owned operation runs the contract's order: authenticate, check the
// method and the URI, authorize, check and normalize the payload (create
// and update), forward the canonical request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.EscapedPath()
	place, on := h.resource.Locate(path, r.URL.RawQuery)
	if !on {
		return next.ServeHTTP(w, r)
	}
	req := h.readRequest(r, path)
	m := h.resource.Decide(place, &req)
	switch m.Action {
	case pce.Pass:
		return next.ServeHTTP(w, r)
	case pce.Plain:
		plainRequest(r, m.Method)
		return next.ServeHTTP(w, r)
	}
	return h.serveOwned(w, r, next, &m)
}

func (h *Handler) serveOwned(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, m *pce.Match) (err error) {
	tw := &trackingWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.logger.Error("voipnow_pce: unexpected failure", zap.Any("panic", p))
			if !tw.wrote {
				h.reject(tw, m.Op, pce.ErrInternal)
			}
			err = nil
		}
	}()

	// 1. Authenticate.
	token, fromQuery, claims, authErr := h.authenticate(tw, r)
	if authErr != nil {
		return h.reject(tw, m.Op, authErr)
	}
	// 2. The method and the URI fragment.
	if m.Err != nil {
		if m.Allow != "" {
			tw.Header().Set("Allow", m.Allow)
		}
		return h.reject(tw, m.Op, m.Err)
	}
	// 3. Authorize, on every request: the caches hold answers, not decisions.
	if e := h.policy.Authorize(m.Op, m.Route, claims.Scopes, claims.User); e != nil {
		return h.reject(tw, m.Op, e)
	}
	setUserPlaceholders(r, claims)
	// 4. The payload of a create or an update; list and delete forward none.
	var body []byte
	if m.Op == pce.OpCreate || m.Op == pce.OpUpdate {
		var e *pce.Error
		if body, e = h.normalizedPayload(r, m.Op, m.Route); e != nil {
			return h.reject(tw, m.Op, e)
		}
	}
	// 5. Forward the canonical request.
	h.canonicalize(r, m, token, fromQuery, body)
	if err := next.ServeHTTP(tw, r); err != nil {
		if tw.wrote {
			countDecision(m.Op, "forwarded")
			return err
		}
		if c := h.logger.Check(zapcore.ErrorLevel, "voipnow_pce: backend unavailable"); c != nil {
			c.Write(zap.Error(err))
		}
		countDecision(m.Op, pce.ErrBackendUnavailable.Code)
		h.writeError(tw, pce.ErrBackendUnavailable)
		return nil
	}
	countDecision(m.Op, "forwarded")
	return nil
}

// readRequest gathers what pce.Resource.Match reads of a request on the
// resource's path: the method, the override headers (in any spelling a CGI
// backend reads as one), the query, the _method fields of a form body (PHP
// parses those) and whether the target holds a raw '#'.
func (h *Handler) readRequest(r *http.Request, path string) pce.Request {
	req := pce.Request{
		Method:      r.Method,
		EscapedPath: path,
		RawQuery:    r.URL.RawQuery,
		Fragment:    strings.IndexByte(r.RequestURI, '#') >= 0,
	}
	for name, vals := range r.Header {
		if pce.IsOverrideHeader(name) {
			req.Overrides = append(req.Overrides, vals...)
		}
	}
	if ct := r.Header["Content-Type"]; pce.IsForm(ct) {
		req.Form, req.FormErr = h.readForm(r, ct)
	}
	return req
}

// readForm reads a form body (at most MaxBody bytes) for its _method
// fields and puts it back for whoever reads the request next.
func (h *Handler) readForm(r *http.Request, contentTypes []string) ([]string, *pce.Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > h.maxBody {
		return nil, pce.ErrPayloadTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if int64(len(b)) > h.maxBody {
		return nil, pce.ErrPayloadTooLarge
	}
	if err != nil {
		return nil, pce.ErrRequestInvalid
	}
	setBody(r, b)
	methods, ok := pce.FormMethods(contentTypes, b)
	if !ok {
		return nil, pce.ErrRequestInvalid
	}
	return methods, nil
}

// plainRequest makes r a plain request for method: no override header, no
// _method in the query (the form body, if any, agreed with method).
func plainRequest(r *http.Request, method string) {
	r.Method = method
	for name := range r.Header {
		if pce.IsOverrideHeader(name) {
			delete(r.Header, name)
		}
	}
	if q := pce.WithoutMethod(r.URL.RawQuery); q != r.URL.RawQuery {
		r.URL.RawQuery = q
		r.URL.ForceQuery = false
		r.RequestURI = r.URL.RequestURI()
	}
}

// authenticate finds the token and looks it up. A failure is the
// documented error: 401 for a missing or bad token, 503 when the
// introspection endpoint gives no answer.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (token string, fromQuery bool, claims *introspect.Claims, e *pce.Error) {
	var queryTokens []string
	if pce.MayHoldToken(r.URL.RawQuery) {
		queryTokens = pce.QueryTokens(r.URL.RawQuery)
	}
	token, fromQuery, given, ok := pce.ExtractToken(r.Header.Values("Authorization"), queryTokens)
	if !ok {
		return "", false, nil, authError(given)
	}
	claims, err := h.lookup.Introspect(r.Context(), token)
	if d, over := overBudget(err); over {
		// Not logged: a flood would flood the log; the metric counts it.
		w.Header().Set("Retry-After", retryAfterSeconds(d))
		return "", false, nil, pce.ErrTooManyRequests
	}
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
			if d, ok := introspect.RetryAfter(err); ok {
				// The endpoint's own delay, in whole seconds, at least 1.
				w.Header().Set("Retry-After", retryAfterSeconds(d))
			}
			return "", false, nil, pce.ErrServiceUnavailable
		}
		return "", false, nil, pce.ErrInternal
	}
	if claims.UserIgnored || claims.UserMissing {
		h.userWarning.Do(func() {
			what := "is neither a string nor a number in"
			if claims.UserMissing {
				what = "is missing from"
			}
			h.logger.Warn("voipnow_pce: the user claim "+what+" an introspection answer: such tokens have no user (they may use @me, never a numeric userId); check user_claim (a dotted path such as ext.uid reaches into objects) and what the identity provider puts in its tokens",
				zap.String("user_claim", h.UserClaim))
		})
	}
	if !claims.ValidFor(time.Now(), &h.checks) {
		return "", false, nil, authError(true)
	}
	return token, fromQuery, claims, nil
}

// retryAfterSeconds is a Retry-After value for d: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
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
func (h *Handler) normalizedPayload(r *http.Request, op pce.Operation, route pce.Route) ([]byte, *pce.Error) {
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
	return pce.AppendNormalized(make([]byte, 0, in.Len()+8), in.Bytes(), op, route, h.payloadRules)
}

// canonicalize turns r into the request the backend sees: the effective
// method, the canonical path, the query less the token and _method pairs,
// the token in the Authorization header, the canonical JSON body (create
// and update) or none (list and delete).
func (h *Handler) canonicalize(r *http.Request, m *pce.Match, token string, fromQuery bool, body []byte) {
	path := h.router.CanonicalPath(m.Route)
	r.URL.Path, r.URL.RawPath = path, path
	r.Method = m.Method
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
	r.TransferEncoding = nil
	r.Trailer = nil
	if body == nil {
		delete(r.Header, "Content-Type")
		delete(r.Header, "Content-Length")
		r.ContentLength = 0
		r.Body = http.NoBody
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	} else {
		// One backing array for both values (Header.Set allocates one each).
		vals := make([]string, 2)
		vals[0], vals[1] = "application/json", strconv.Itoa(len(body))
		r.Header["Content-Type"], r.Header["Content-Length"] = vals[0:1:1], vals[1:2:2]
		r.ContentLength = int64(len(body))
		setBody(r, body)
	}
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
func (h *Handler) reject(w http.ResponseWriter, op pce.Operation, e *pce.Error) error {
	countDecision(op, e.Code)
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
		if hdr.Get("Retry-After") == "" {
			hdr.Set("Retry-After", defaultRetryAfter)
		}
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

// setBody makes b the body the next handler reads (and may read again).
func setBody(r *http.Request, b []byte) {
	r.Body = newForwardBody(b)
	r.GetBody = func() (io.ReadCloser, error) { return newForwardBody(b), nil }
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
