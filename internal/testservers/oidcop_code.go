package testservers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The authorization code grant of the OP, and its refresh tokens.

// OPUser is the user the OP's login page logs in, without asking: the
// subject of every code flow token, whose ext.uid is OPUserUID.
const (
	OPUser    = "alice"
	OPUserUID = "42"
)

// opLoginPath is the OP's login page, on its own server.
const opLoginPath = "/login"

// refreshLifetime is how long a refresh token lives.
const refreshLifetime = 24 * time.Hour

// opAuthRequest is an auth request as op sees it. The storage hands out
// copies, so that op reads them without the storage's lock.
type opAuthRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	codeChallenge                           *oidc.CodeChallenge
	// Set by the login.
	subject, uid string
	authTime     time.Time
	amr          []string
	done         bool
}

func (a *opAuthRequest) GetID() string                         { return a.id }
func (a *opAuthRequest) GetACR() string                        { return "" }
func (a *opAuthRequest) GetAMR() []string                      { return a.amr }
func (a *opAuthRequest) GetAudience() []string                 { return []string{a.clientID} } // the ID token's
func (a *opAuthRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *opAuthRequest) GetClientID() string                   { return a.clientID }
func (a *opAuthRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }
func (a *opAuthRequest) GetNonce() string                      { return a.nonce }
func (a *opAuthRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *opAuthRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *opAuthRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *opAuthRequest) GetScopes() []string                   { return a.scopes }
func (a *opAuthRequest) GetState() string                      { return a.state }
func (a *opAuthRequest) GetSubject() string                    { return a.subject }
func (a *opAuthRequest) Done() bool                            { return a.done }
func (a *opAuthRequest) userUID() string                       { return a.uid }

func (a *opAuthRequest) clone() *opAuthRequest {
	c := *a
	c.scopes = slices.Clone(a.scopes)
	c.amr = slices.Clone(a.amr)
	return &c
}

func (s *opStorage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if len(req.Prompt) == 1 && req.Prompt[0] == oidc.PromptNone {
		// No session to reuse, and prompt=none forbids the login page.
		return nil, oidc.ErrLoginRequired()
	}
	a := &opAuthRequest{id: randomID(), clientID: req.ClientID, redirectURI: req.RedirectURI, state: req.State,
		nonce: req.Nonce, scopes: slices.Clone(req.Scopes), responseType: req.ResponseType, responseMode: req.ResponseMode}
	if req.CodeChallenge != "" {
		a.codeChallenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authRequests[a.id] = a
	return a.clone(), nil
}

func (s *opStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return nil, errors.New("auth request not found")
	}
	return a.clone(), nil
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code unknown or used")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *opStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authRequests[id]; !ok {
		return errors.New("auth request not found")
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called by op once the code has been exchanged:
// the code cannot be used twice.
func (s *opStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// login is the login page: it logs OPUser in at once and hands back to
// op's callback, as exampleop's login does after checking a password.
func (s *opStorage) login(callback func(context.Context, string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		s.mu.Lock()
		a, ok := s.authRequests[id]
		if ok {
			a.subject, a.uid = OPUser, OPUserUID
			a.authTime = time.Now()
			a.amr = []string{"pwd"}
			a.done = true
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "unknown auth request", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}
}

// opRefresh is an issued refresh token.
type opRefresh struct {
	// value is the token; id is what op decodes from it when the client
	// has a RefreshIntrospection (else the same as value).
	value, id              string
	clientID, subject, uid string
	// scopes are those granted at the login: a refresh may ask for fewer
	// for its access token, the new refresh token keeps them all (RFC
	// 6749, section 6).
	scopes          []string
	amr             []string
	authTime        time.Time
	issued, expires time.Time
	// access is the id of the access token issued with it.
	access string
}

// opRefreshRequest is a refresh_token grant as op sees it.
type opRefreshRequest struct {
	clientID, subject, uid string
	scopes, amr            []string
	authTime               time.Time
}

func (r *opRefreshRequest) GetAMR() []string                 { return r.amr }
func (r *opRefreshRequest) GetAudience() []string            { return []string{r.clientID} } // the ID token's
func (r *opRefreshRequest) GetAuthTime() time.Time           { return r.authTime }
func (r *opRefreshRequest) GetClientID() string              { return r.clientID }
func (r *opRefreshRequest) GetScopes() []string              { return r.scopes }
func (r *opRefreshRequest) GetSubject() string               { return r.subject }
func (r *opRefreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }
func (r *opRefreshRequest) userUID() string                  { return r.uid }

// validRefreshLocked is the refresh token of that value if it may still
// be used; s.mu is held.
func (s *opStorage) validRefreshLocked(value string) (*opRefresh, bool) {
	rt, ok := s.refresh[value]
	if !ok || time.Now().After(rt.expires) {
		return nil, false
	}
	return rt, true
}

func (s *opStorage) TokenRequestByRefreshToken(_ context.Context, value string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.validRefreshLocked(value)
	if !ok {
		return nil, op.ErrInvalidRefreshToken
	}
	return &opRefreshRequest{clientID: rt.clientID, subject: rt.subject, uid: rt.uid, scopes: slices.Clone(rt.scopes),
		amr: slices.Clone(rt.amr), authTime: rt.authTime}, nil
}

// CreateAccessAndRefreshTokens is called by op for a code exchange that
// asked for offline_access (current is "") and for every refresh_token
// grant (current is the refresh token presented). Rotation: the refresh
// token presented and the access token issued with it stop working, as in
// zitadel's example storage (and Ory Hydra).
func (s *opStorage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rt opRefresh
	if current == "" {
		a, ok := req.(*opAuthRequest)
		if !ok {
			return "", "", time.Time{}, oidc.ErrServerError().WithDescription("refresh token for an unexpected request")
		}
		rt = opRefresh{clientID: a.clientID, subject: a.subject, uid: a.uid, scopes: slices.Clone(a.scopes),
			amr: slices.Clone(a.amr), authTime: a.authTime}
	} else {
		old, ok := s.validRefreshLocked(current)
		if !ok {
			// Used by a concurrent refresh since op looked it up.
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token unknown, used or revoked")
		}
		delete(s.refresh, current)
		if tok := s.tokens[old.access]; tok != nil {
			tok.revoked = true
		}
		rt = *old
	}
	tok := s.newTokenLocked(req)
	now := time.Now()
	rt.issued, rt.expires, rt.access = now, now.Add(refreshLifetime), tok.id
	rt.id = "rt-" + randomID()
	rt.value = rt.id
	if c := s.clients[rt.clientID]; c != nil && c.RefreshIntrospection != "" {
		// Minted as op mints its access tokens, so that its introspection
		// decodes it and asks us.
		v, err := s.crypto.Encrypt(rt.id + ":" + rt.subject)
		if err != nil {
			return "", "", time.Time{}, err
		}
		rt.value = v
	}
	s.refresh[rt.value] = &rt
	return tok.id, rt.value, tok.expires, nil
}

func (s *opStorage) GetRefreshTokenInfo(_ context.Context, _ string, value string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[value]; ok {
		return rt.subject, rt.value, nil
	}
	return "", "", op.ErrInvalidRefreshToken
}

// RevokeToken revokes an access token (by id) or a refresh token (by
// value, from GetRefreshTokenInfo) and with it the access token issued
// with it; a token of another client is refused (RFC 7009, section 2.1),
// an unknown one ignored.
func (s *opStorage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.tokens[tokenOrID]; ok {
		if tok.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		tok.revoked = true
		return nil
	}
	if rt, ok := s.refresh[tokenOrID]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refresh, tokenOrID)
		if tok := s.tokens[rt.access]; tok != nil {
			tok.revoked = true
		}
	}
	return nil
}

// CodeFlowTokens runs the authorization code flow for the client (which
// must have RedirectURIs) as a user agent would: /authorize with PKCE
// (S256) and a state, the login page, op's callback, then the redirect to
// the client's first redirect URI, which is not followed (nothing listens
// there): the code is taken from it and exchanged at the token endpoint
// with HTTP Basic. It returns the access token and the refresh token ("" when
// op issued none: without offline_access, or for a client without the
// refresh_token grant).
func (o *OP) CodeFlowTokens(t testing.TB, clientID, secret string, scopes ...string) (access, refresh string) {
	t.Helper()
	o.st.mu.Lock()
	c := o.st.clients[clientID]
	o.st.mu.Unlock()
	if c == nil || len(c.RedirectURIs) == 0 {
		t.Fatalf("code flow: client %q has no redirect URI", clientID)
	}
	redirectURI := c.RedirectURIs[0]
	verifier, state := randomID()+randomID(), randomID()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"response_type":         {string(oidc.ResponseTypeCode)},
		"scope":                 {strings.Join(scopes, " ")},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {string(oidc.CodeChallengeMethodS256)},
	}
	var hops []string
	ua := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), o.URL+"/") {
			return http.ErrUseLastResponse // the redirect to the client
		}
		hops = append(hops, req.URL.Path)
		if len(via) > 5 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	res, err := ua.Get(o.AuthorizationURL() + "?" + q.Encode())
	if err != nil {
		t.Fatalf("code flow: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := []string{opLoginPath, "/authorize/callback"}; !slices.Equal(hops, want) {
		t.Fatalf("code flow: went through %v, want %v (last answer %d %s)", hops, want, res.StatusCode, body)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), redirectURI+"?") {
		t.Fatalf("code flow: the callback answered %d, Location %q, %s; want a redirect to %s", res.StatusCode, res.Header.Get("Location"), body, redirectURI)
	}
	back := loc.Query()
	if e := back.Get("error"); e != "" {
		t.Fatalf("code flow: %s: %s", e, back.Get("error_description"))
	}
	if back.Get("state") != state || back.Get("code") == "" {
		t.Fatalf("code flow: redirected with state %q (want %q) and code %q", back.Get("state"), state, back.Get("code"))
	}
	form := url.Values{
		"grant_type":    {string(oidc.GrantTypeCode)},
		"code":          {back.Get("code")},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}
	status, tok := o.token(t, clientID, secret, form)
	if status != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("code flow: token endpoint answered %d %+v", status, tok)
	}
	return tok.AccessToken, tok.RefreshToken
}

// OPTokenAnswer is an answer of the token endpoint, a success or an error.
type OPTokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// Refresh presents a refresh token at the token endpoint (the
// refresh_token grant), with HTTP Basic; scopes, when given, narrow the
// new access token's. It returns the HTTP status and the answer.
func (o *OP) Refresh(t testing.TB, clientID, secret, refresh string, scopes ...string) (int, OPTokenAnswer) {
	t.Helper()
	form := url.Values{"grant_type": {string(oidc.GrantTypeRefreshToken)}, "refresh_token": {refresh}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	return o.token(t, clientID, secret, form)
}

func (o *OP) token(t testing.TB, clientID, secret string, form url.Values) (int, OPTokenAnswer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.TokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("token endpoint: %v", err)
	}
	defer res.Body.Close()
	var ans OPTokenAnswer
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil {
		t.Fatalf("token endpoint: %d, body not JSON: %v", res.StatusCode, err)
	}
	return res.StatusCode, ans
}
