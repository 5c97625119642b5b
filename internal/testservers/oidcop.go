package testservers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OP is a real OAuth 2.0 / OpenID Connect server, zitadel's op package,
// on loopback, with a small in-memory storage of ours: clients with
// secrets, the client_credentials grant (with refresh tokens), RFC 7662
// introspection and RFC 7009 revocation. Tokens are opaque; introspection
// answers carry aud, iss, exp, iat, nbf, scope, sub and, for clients that
// have one, ext.uid (as Ory Hydra puts custom claims under ext).
type OP struct {
	// URL is the issuer (http://127.0.0.1:port).
	URL string
	st  *opStorage
}

// OPClient is a client of the OP.
type OPClient struct {
	ID, Secret string
	// Audience is the aud of its tokens.
	Audience []string
	// UID, when set, is the ext.uid claim of its tokens.
	UID string
	// Lifetime of its access tokens; an hour when zero.
	Lifetime time.Duration
	// AuthMethod is how it authenticates: client_secret_basic (default)
	// or client_secret_post.
	AuthMethod oidc.AuthMethod
}

// NewOP starts an OP for the test with the given clients.
func NewOP(t testing.TB, clients ...OPClient) *OP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + l.Addr().String()
	st := &opStorage{issuer: issuer, key: key, clients: map[string]*OPClient{}, tokens: map[string]*opToken{}, refresh: map[string]*opToken{}}
	for i := range clients {
		c := clients[i]
		if c.AuthMethod == "" {
			c.AuthMethod = oidc.AuthMethodBasic
		}
		if c.Lifetime == 0 {
			c.Lifetime = time.Hour
		}
		st.clients[c.ID] = &c
	}
	var cryptoKey [32]byte
	_, _ = rand.Read(cryptoKey[:])
	provider, err := op.NewOpenIDProvider(issuer, &op.Config{CryptoKey: cryptoKey, CodeMethodS256: true, GrantTypeRefreshToken: true}, st, op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: provider, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &OP{URL: issuer, st: st}
}

// IntrospectionURL is the OP's RFC 7662 endpoint.
func (o *OP) IntrospectionURL() string { return o.URL + "/oauth/introspect" }

// TokenURL is the OP's token endpoint.
func (o *OP) TokenURL() string { return o.URL + "/oauth/token" }

// RevocationURL is the OP's RFC 7009 endpoint.
func (o *OP) RevocationURL() string { return o.URL + "/revoke" }

// opToken is an issued token.
type opToken struct {
	id, clientID, subject string
	scopes, audience      []string
	issued, expires       time.Time
	revoked               bool
}

type opStorage struct {
	issuer  string
	key     *rsa.PrivateKey
	mu      sync.Mutex
	clients map[string]*OPClient
	tokens  map[string]*opToken // by access token id
	refresh map[string]*opToken // by refresh token value
}

var errUnsupported = errors.New("not supported by this test OP")

// Auth requests (the code flow) are not used by the tests.
func (*opStorage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}
func (*opStorage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}
func (*opStorage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}
func (*opStorage) SaveAuthCode(context.Context, string, string) error { return errUnsupported }
func (*opStorage) DeleteAuthRequest(context.Context, string) error    { return errUnsupported }

func (s *opStorage) newToken(req op.TokenRequest) *opToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID := req.GetSubject()
	c := s.clients[clientID]
	lifetime := time.Hour
	aud := req.GetAudience()
	if c != nil {
		lifetime, aud = c.Lifetime, c.Audience
	}
	now := time.Now()
	tok := &opToken{id: randomID(), clientID: clientID, subject: req.GetSubject(), scopes: req.GetScopes(),
		audience: aud, issued: now, expires: now.Add(lifetime)}
	s.tokens[tok.id] = tok
	return tok
}

func (s *opStorage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	tok := s.newToken(req)
	return tok.id, tok.expires, nil
}

func (s *opStorage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, _ string) (string, string, time.Time, error) {
	tok := s.newToken(req)
	refresh := "rt-" + randomID()
	s.mu.Lock()
	s.refresh[refresh] = tok
	s.mu.Unlock()
	return tok.id, refresh, tok.expires, nil
}

func (*opStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errUnsupported
}
func (*opStorage) TerminateSession(context.Context, string, string) error { return nil }

func (s *opStorage) RevokeToken(_ context.Context, tokenOrID, _, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.tokens[tokenOrID]; ok {
		tok.revoked = true
	}
	if tok, ok := s.refresh[tokenOrID]; ok {
		tok.revoked = true
	}
	return nil
}

func (s *opStorage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.refresh[token]; ok {
		return tok.subject, token, nil
	}
	return "", "", op.ErrInvalidRefreshToken
}

type opKey struct{ k *rsa.PrivateKey }

func (k opKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k opKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k opKey) Use() string                                 { return "sig" }
func (k opKey) ID() string                                  { return "k1" }

type opSigningKey struct{ opKey }

func (k opSigningKey) Key() any { return k.k }

type opPublicKey struct{ opKey }

func (k opPublicKey) Key() any { return &k.k.PublicKey }

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return opSigningKey{opKey{s.key}}, nil
}
func (*opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{opPublicKey{opKey{s.key}}}, nil
}

func (s *opStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("unknown client")
	}
	return opClient{c}, nil
}

func (s *opStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok && c.Secret == secret {
		return nil
	}
	return errors.New("invalid client")
}

func (*opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}
func (*opStorage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errUnsupported
}

func (s *opStorage) SetIntrospectionFromToken(_ context.Context, r *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[tokenID]
	if !ok || tok.revoked || tok.subject != subject || time.Now().After(tok.expires) {
		return errors.New("inactive")
	}
	r.Scope = tok.scopes
	r.ClientID = tok.clientID
	r.TokenType = oidc.BearerToken
	r.Subject = tok.subject
	r.Audience = tok.audience
	r.Issuer = s.issuer
	r.Expiration = oidc.FromTime(tok.expires)
	r.IssuedAt = oidc.FromTime(tok.issued)
	r.NotBefore = oidc.FromTime(tok.issued)
	if c := s.clients[tok.clientID]; c != nil && c.UID != "" {
		r.Claims = map[string]any{"ext": map[string]any{"uid": c.UID}}
	}
	return nil
}

func (*opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}
func (*opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}
func (*opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}
func (*opStorage) Health(context.Context) error { return nil }

// The client_credentials grant.
func (s *opStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	return s.GetClientByClientID(ctx, id)
}

func (s *opStorage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	return &oidc.JWTTokenRequest{Subject: id, Scopes: scopes}, nil
}

// opClient is an OPClient as op sees it.
type opClient struct{ c *OPClient }

func (c opClient) GetID() string                     { return c.c.ID }
func (opClient) RedirectURIs() []string              { return nil }
func (opClient) PostLogoutRedirectURIs() []string    { return nil }
func (opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c opClient) AuthMethod() oidc.AuthMethod       { return c.c.AuthMethod }
func (opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (opClient) LoginURL(string) string               { return "" }
func (opClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (opClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (opClient) DevMode() bool                        { return true }
func (opClient) IsScopeAllowed(string) bool           { return true }
func (opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (opClient) ClockSkew() time.Duration             { return 0 }
func (opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeRefreshToken}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
