package testservers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OP is a real OAuth 2.0 / OpenID Connect server, zitadel's op package,
// on loopback, with a small in-memory storage of ours: clients with
// secrets, the client_credentials grant, the authorization code grant
// (with PKCE, and a login page that logs in OPUser at once), the
// refresh_token grant with rotation, RFC 7662 introspection and RFC 7009
// revocation. Tokens are opaque; introspection answers carry aud, iss,
// exp, iat, nbf, scope, sub and, when the token has a user id, ext.uid
// (as Ory Hydra puts custom claims under ext): the client's UID for a
// client_credentials token, OPUser's for a code flow one.
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
	// RedirectURIs, when set, let the client use the authorization code
	// grant (see OP.CodeFlowTokens, which uses the first one).
	RedirectURIs []string
	// GrantTypes, when set, replace the client's grants, which are by
	// default client_credentials and refresh_token, and authorization_code
	// when it has RedirectURIs. op issues a refresh token in the code flow
	// only when offline_access was asked for and refresh_token is a grant
	// of the client.
	GrantTypes []oidc.GrantType
	// RefreshIntrospection is what introspection answers for the client's
	// refresh tokens. "" (the default): they are random strings that op
	// cannot decode, and it answers {"active":false} without asking the
	// storage. RefreshAsTokenType or RefreshAsTokenUse: they are minted
	// like access tokens, so op asks the storage, which answers active
	// with the refresh token's claims and token_type "refresh_token", or
	// token_type "Bearer" and token_use "refresh_token" (as Ory Hydra
	// does).
	RefreshIntrospection string
}

// Values of OPClient.RefreshIntrospection.
const (
	RefreshAsTokenType = "token_type"
	RefreshAsTokenUse  = "token_use"
)

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
	var cryptoKey [32]byte
	_, _ = rand.Read(cryptoKey[:])
	st := &opStorage{issuer: issuer, key: key, crypto: op.NewAES256GCMCrypto(cryptoKey, ""),
		clients: map[string]*OPClient{}, tokens: map[string]*opToken{}, refresh: map[string]*opRefresh{},
		authRequests: map[string]*opAuthRequest{}, codes: map[string]string{}}
	for i := range clients {
		c := clients[i]
		if c.AuthMethod == "" {
			c.AuthMethod = oidc.AuthMethodBasic
		}
		if c.Lifetime == 0 {
			c.Lifetime = time.Hour
		}
		if c.GrantTypes == nil {
			c.GrantTypes = []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeRefreshToken}
			if len(c.RedirectURIs) > 0 {
				c.GrantTypes = append(c.GrantTypes, oidc.GrantTypeCode)
			}
		}
		st.clients[c.ID] = &c
	}
	provider, err := op.NewOpenIDProvider(issuer, &op.Config{CryptoKey: cryptoKey, CodeMethodS256: true, GrantTypeRefreshToken: true}, st, op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	// The login UI is ours, on the OP's server, as in zitadel's
	// example/server/exampleop: op sends the user agent to the client's
	// LoginURL with the auth request's id; the login hands back to op's
	// callback, which redirects to the client's redirect_uri with a code.
	mux := http.NewServeMux()
	mux.Handle(opLoginPath, op.NewIssuerInterceptor(provider.IssuerFromRequest).HandlerFunc(st.login(op.AuthCallbackURL(provider))))
	mux.Handle("/", provider)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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

// AuthorizationURL is the OP's authorization endpoint.
func (o *OP) AuthorizationURL() string { return o.URL + "/authorize" }

// opToken is an issued access token.
type opToken struct {
	id, clientID, subject string
	// uid is the ext.uid claim ("" for none).
	uid              string
	scopes, audience []string
	issued, expires  time.Time
	revoked          bool
}

type opStorage struct {
	issuer string
	key    *rsa.PrivateKey
	// crypto is op's own token encryption (the provider's CryptoKey):
	// refresh tokens minted with it are decoded by op's introspection.
	crypto       op.Crypto
	mu           sync.Mutex
	clients      map[string]*OPClient
	tokens       map[string]*opToken       // access tokens by id
	refresh      map[string]*opRefresh     // refresh tokens by value
	authRequests map[string]*opAuthRequest // by id
	codes        map[string]string         // auth request id by code
}

var errUnsupported = errors.New("not supported by this test OP")

// newTokenLocked records an access token for req; s.mu is held.
func (s *opStorage) newTokenLocked(req op.TokenRequest) *opToken {
	clientID := req.GetSubject() // client_credentials: the client is the subject
	if r, ok := req.(interface{ GetClientID() string }); ok {
		clientID = r.GetClientID()
	}
	c := s.clients[clientID]
	lifetime := time.Hour
	aud := req.GetAudience()
	var uid string
	if c != nil {
		lifetime, aud, uid = c.Lifetime, c.Audience, c.UID
	}
	if u, ok := req.(interface{ userUID() string }); ok {
		uid = u.userUID()
	}
	now := time.Now()
	tok := &opToken{id: randomID(), clientID: clientID, subject: req.GetSubject(), uid: uid,
		scopes: slices.Clone(req.GetScopes()), audience: aud, issued: now, expires: now.Add(lifetime)}
	s.tokens[tok.id] = tok
	return tok
}

func (s *opStorage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.newTokenLocked(req)
	return tok.id, tok.expires, nil
}

func (s *opStorage) TerminateSession(context.Context, string, string) error { return nil }

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
	if tok, ok := s.tokens[tokenID]; ok {
		if tok.revoked || tok.subject != subject || time.Now().After(tok.expires) {
			return errors.New("inactive")
		}
		s.introspectionLocked(r, tok.clientID, tok.subject, tok.uid, tok.scopes, tok.audience, tok.issued, tok.expires)
		r.TokenType = oidc.BearerToken
		return nil
	}
	// A refresh token that op could decode: only those of a client with
	// a RefreshIntrospection (the others are random strings).
	for _, rt := range s.refresh {
		if rt.id != tokenID {
			continue
		}
		c := s.clients[rt.clientID]
		if c == nil || c.RefreshIntrospection == "" || rt.subject != subject || time.Now().After(rt.expires) {
			return errors.New("inactive")
		}
		s.introspectionLocked(r, rt.clientID, rt.subject, rt.uid, rt.scopes, c.Audience, rt.issued, rt.expires)
		switch c.RefreshIntrospection {
		case RefreshAsTokenUse:
			r.TokenType = oidc.BearerToken
			if r.Claims == nil {
				r.Claims = map[string]any{}
			}
			r.Claims["token_use"] = "refresh_token"
		default:
			r.TokenType = "refresh_token"
		}
		return nil
	}
	return errors.New("inactive")
}

// introspectionLocked fills an active answer; s.mu is held.
func (s *opStorage) introspectionLocked(r *oidc.IntrospectionResponse, clientID, subject, uid string, scopes, audience []string, issued, expires time.Time) {
	r.Scope = slices.Clone(scopes)
	r.ClientID = clientID
	r.Subject = subject
	r.Audience = slices.Clone(audience)
	r.Issuer = s.issuer
	r.Expiration = oidc.FromTime(expires)
	r.IssuedAt = oidc.FromTime(issued)
	r.NotBefore = oidc.FromTime(issued)
	if uid != "" {
		r.Claims = map[string]any{"ext": map[string]any{"uid": uid}}
	}
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
func (c opClient) RedirectURIs() []string            { return c.c.RedirectURIs }
func (opClient) PostLogoutRedirectURIs() []string    { return nil }
func (opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c opClient) AuthMethod() oidc.AuthMethod       { return c.c.AuthMethod }
func (opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (opClient) LoginURL(id string) string            { return opLoginPath + "?id=" + url.QueryEscape(id) }
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
func (c opClient) GrantTypes() []oidc.GrantType { return c.c.GrantTypes }

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
