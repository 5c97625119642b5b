package introspect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by NewClient to a Config's zero fields.
const (
	// DefaultUserClaim is the claim copied into Claims.User.
	DefaultUserClaim = "sub"
	// DefaultTimeout bounds one whole introspection call.
	DefaultTimeout = 2 * time.Second
)

const (
	// maxBody is the largest introspection answer read; a longer one is
	// malformed.
	maxBody = 1 << 20
	// maxDrain is how much of an unused body is read to let the connection
	// be reused; a longer body closes the connection instead.
	maxDrain = 64 << 10
	// maxIdlePerHost is the default transport's idle pool per host: all
	// calls go to one endpoint, so the stock 2 would churn connections.
	maxIdlePerHost = 64
)

// Config is what a Client needs to know.
type Config struct {
	// Endpoint is the introspection URL, absolute http or https, without
	// user info.
	Endpoint string
	// ClientID identifies the gateway to the endpoint (client_secret_basic).
	ClientID string
	// ClientSecret is ClientID's secret.
	ClientSecret string
	// UserClaim is the answer member copied into Claims.User; "sub" when
	// empty.
	UserClaim string
	// Timeout bounds each call, on top of the caller's context; 2s when
	// zero or negative.
	Timeout time.Duration
	// AuthMethod is how the gateway authenticates to the endpoint:
	// "client_secret_basic" (the default, when empty) or
	// "client_secret_post" (RFC 6749 section 2.3.1).
	AuthMethod string
	// TLS, when set, is the TLS configuration of the default transport (a
	// private CA in RootCAs, a client certificate for mutual TLS).
	TLS *tls.Config
	// Transport, when set, carries the requests; by default a clone of
	// http.DefaultTransport with a larger idle pool per host.
	Transport http.RoundTripper
}

// The client authentication methods of RFC 6749 section 2.3.1.
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
)

// maxRetryAfter bounds the Retry-After the endpoint may impose.
const maxRetryAfter = time.Hour

// RetryAfterError is wrapped, beside ErrUnavailable, when the endpoint
// answered 429 or 5xx with a Retry-After header.
type RetryAfterError struct {
	// After is the delay it asked for, at most an hour.
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("the endpoint asks to retry after %s", e.After)
}

// RetryAfter returns the delay the endpoint asked for in err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.After, true
	}
	return 0, false
}

// Client is an RFC 7662 introspection client. It is safe for concurrent
// use and implements Introspector.
type Client struct {
	endpoint  string // as configured, for requests
	display   string // scheme://host/path, for error messages
	authz     string // the precomputed Authorization header value (basic)
	postAuth  string // the precomputed client_id and client_secret pairs (post)
	userClaim string
	timeout   time.Duration
	http      *http.Client
}

var _ Introspector = (*Client)(nil)

// NewClient checks cfg and returns a Client for it. The endpoint must be an
// absolute http or https URL with a host and no user info, and the client
// id must not be empty.
func NewClient(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("invalid introspection endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("introspection endpoint %q: scheme must be http or https", cfg.Endpoint)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("introspection endpoint %q: no host", cfg.Endpoint)
	}
	if u.User != nil {
		return nil, errors.New("introspection endpoint: user info is not allowed in the URL, use the client id and secret")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("introspection endpoint %q: a fragment is not allowed", cfg.Endpoint)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("introspection client id is empty")
	}
	c := &Client{
		endpoint:  u.String(),
		display:   u.Scheme + "://" + u.Host + u.EscapedPath(),
		userClaim: cfg.UserClaim,
		timeout:   cfg.Timeout,
	}
	switch cfg.AuthMethod {
	case "", ClientSecretBasic:
		c.authz = basicAuth(cfg.ClientID, cfg.ClientSecret)
	case ClientSecretPost:
		c.postAuth = "&client_id=" + url.QueryEscape(cfg.ClientID) + "&client_secret=" + url.QueryEscape(cfg.ClientSecret)
	default:
		return nil, fmt.Errorf("client authentication %q: use %s or %s", cfg.AuthMethod, ClientSecretBasic, ClientSecretPost)
	}
	if cfg.TLS != nil && u.Scheme != "https" {
		return nil, fmt.Errorf("introspection endpoint %q: TLS settings need an https URL", cfg.Endpoint)
	}
	if c.userClaim == "" {
		c.userClaim = DefaultUserClaim
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	rt := cfg.Transport
	if rt == nil {
		t := defaultTransport()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		rt = t
	}
	c.http = &http.Client{
		Transport: rt,
		// A redirect is not an answer: following it would turn the POST
		// into a GET or resend the credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// defaultTransport clones http.DefaultTransport with a larger idle pool.
func defaultTransport() *http.Transport {
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: maxIdlePerHost}
	}
	t := base.Clone()
	t.MaxIdleConnsPerHost = maxIdlePerHost
	if t.MaxIdleConns != 0 && t.MaxIdleConns < maxIdlePerHost {
		t.MaxIdleConns = maxIdlePerHost
	}
	return t
}

// basicAuth is the client_secret_basic Authorization value: id and secret
// are form-url-encoded before the Basic encoding (RFC 6749 §2.3.1).
func basicAuth(id, secret string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return r.Header.Get("Authorization")
}

// Introspect asks the endpoint about token. An inactive, unknown, revoked
// or refresh token gives &Claims{Active: false} and no error; every failure
// to get a usable answer gives an error wrapping ErrUnavailable. An empty
// token is inactive without a call. Errors never contain the token or the
// client secret.
func (c *Client) Introspect(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return &Claims{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	form := "token=" + url.QueryEscape(token) + "&token_type_hint=access_token" + c.postAuth
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form))
	if err != nil {
		return nil, fmt.Errorf("%w: building request for %s", ErrUnavailable, c.display)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: POST %s: %w", ErrUnavailable, c.display, transportCause(err))
	}
	defer closeBody(resp.Body)

	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		// The endpoint is overloaded or down: an outage, with the delay it
		// asks for when it says one.
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return nil, fmt.Errorf("%w: POST %s: status %d: %w", ErrUnavailable, c.display, resp.StatusCode, &RetryAfterError{After: d})
		}
		return nil, fmt.Errorf("%w: POST %s: status %d", ErrUnavailable, c.display, resp.StatusCode)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return nil, fmt.Errorf("%w: %w: POST %s: status %d", ErrUnavailable, ErrRefused, c.display, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: POST %s: status %d", ErrUnavailable, c.display, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: POST %s: reading answer: %w", ErrUnavailable, c.display, transportCause(err))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("%w: POST %s: answer larger than %d bytes", ErrUnavailable, c.display, maxBody)
	}
	claims, err := parseAnswer(body, c.userClaim)
	if err != nil {
		return nil, fmt.Errorf("%w: POST %s: malformed answer: %v", ErrUnavailable, c.display, err)
	}
	return claims, nil
}

// CloseIdleConnections closes the idle connections of the client's
// transport, e.g. when the gateway's configuration is unloaded.
func (c *Client) CloseIdleConnections() {
	c.http.CloseIdleConnections()
}

// transportCause strips the *url.Error wrapper (whose text repeats the
// URL) and keeps its cause, so errors.Is(err, context.DeadlineExceeded)
// still works.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// closeBody drains a bounded amount of body so that the connection can be
// reused, then closes it.
func closeBody(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, maxDrain))
	_ = b.Close()
}

// retryAfter reads a Retry-After value (RFC 9110 section 10.2.3): delay
// seconds or an HTTP date, at most maxRetryAfter; a date in the past is
// no delay the gateway can use.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return min(time.Duration(min(n, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0, false
	}
	return min(t.Sub(now).Round(time.Second), maxRetryAfter), true
}
