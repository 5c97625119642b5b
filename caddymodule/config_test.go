package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// Each testdata/caddyfile_adapt/*.caddyfiletest is a Caddyfile, a line of
// dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("../testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt cases found (%v)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		caddyfileText, jsonText, ok := strings.Cut(string(data), "\n----------\n")
		if !ok {
			t.Fatalf("%s: no ---------- separator", f)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			if !caddytest.CompareAdapt(t, f, caddyfileText, "caddyfile", strings.TrimRight(jsonText, "\n")) {
				t.Error("adapted JSON differs")
			}
		})
	}
}

// A wrong Caddyfile is refused while it is read, naming the subdirective.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"voipnow_pce {\n bogus 1\n}", "unrecognized voipnow_pce subdirective 'bogus'"},
		{"voipnow_pce {\n max_ttl\n}", "max_ttl needs one argument"},
		{"voipnow_pce {\n max_ttl 5m 6m\n}", "max_ttl takes one argument"},
		{"voipnow_pce {\n max_ttl soon\n}", "max_ttl: 'soon' is not a duration"},
		{"voipnow_pce {\n negative_ttl -1s\n}", "negative_ttl: must be positive"},
		{"voipnow_pce {\n id_max_length many\n}", "id_max_length: 'many' is not a whole number"},
		{"voipnow_pce {\n max_body lots\n}", "max_body: 'lots' is not a size"},
		{"voipnow_pce {\n required_scopes\n}", "required_scopes needs at least one argument"},
		{"voipnow_pce {\n client_id a\n client_id b\n}", "'client_id' given twice"},
		{"voipnow_pce {\n allow_private_urls yes\n}", "allow_private_urls takes no argument"},
		{"voipnow_pce {\n id_max_length 0\n}", "id_max_length: must be at least 1"},
		{"voipnow_pce {\n id_min_length -3\n}", "id_min_length: must be at least 1"},
		{"voipnow_pce {\n cache_size 0\n}", "cache_size: must be at least 1, or -1"},
		{"voipnow_pce {\n cache disk\n}", "cache: unknown type 'disk'"},
		{"voipnow_pce {\n cache redis\n}", "cache redis needs at least one"},
		{"voipnow_pce {\n cache memory redis://x\n}", "cache memory takes no argument"},
		{"voipnow_pce {\n cache redis redis://x {\n  sentinel y\n }\n}", "unrecognized voipnow_pce cache subdirective 'sentinel'"},
		{"voipnow_pce {\n cache redis rediss://x {\n  tls_client_cert a.pem\n }\n}", "tls_client_cert needs the certificate and the key files"},
		{"voipnow_pce {\n cache redis rediss://x {\n  tls_insecure_skip_verify yes\n }\n}", "tls_insecure_skip_verify takes no argument"},
		{"voipnow_pce {\n cache redis rediss://x {\n  min_replicas some\n }\n}", "min_replicas: 'some' is not a whole number"},
		{"voipnow_pce {\n cache redis rediss://x {\n  tls_ca\n }\n}", "tls_ca needs one argument"},
		{"voipnow_pce {\n revocation_grace never\n}", "revocation_grace: 'never' is not a duration"},
		{"voipnow_pce extra", "wrong argument count"},
		{"voipnow_pce {\n operations\n}", "operations needs at least one argument"},
		{"voipnow_pce {\n leeway -1s\n}", "leeway: '-1s' is not a duration of 0 or more"},
		{"voipnow_pce {\n miss_budget 50\n}", "miss_budget: want <lookups> <window>"},
		{"voipnow_pce {\n miss_budget none 1s\n}", "miss_budget: 'none' is not a number"},
		{"voipnow_pce {\n miss_budget 5 -1s\n}", "miss_budget: '-1s' is not a positive duration"},
		{"voipnow_pce {\n max_introspections 0\n}", "max_introspections: must be at least 1"},
		{"voipnow_pce {\n leeway soon\n}", "leeway: 'soon' is not a duration"},
		{"voipnow_pce {\n audiences\n}", "audiences needs at least one argument"},
		{"voipnow_pce {\n scopes uapi\n}", "scopes takes a block"},
		{"voipnow_pce {\n scopes {\n  patch uapi\n }\n}", "scopes: unknown operation 'patch'"},
		{"voipnow_pce {\n scopes {\n  list\n }\n}", "scopes: list needs at least one scope"},
		{"voipnow_pce {\n scopes {\n  list a\n  list b\n }\n}", "scopes: 'list' given twice"},
		{"voipnow_pce {\n scopes {\n }\n}", "scopes: empty block"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.want)
		}
	}
}

// Validate refuses what cannot work, naming the subdirective.
func TestValidate(t *testing.T) {
	good := func() *Handler {
		h := &Handler{IntrospectionURL: "http://127.0.0.1:1/introspect", ClientID: "gateway", ClientSecret: "s"}
		h.setDefaults()
		return h
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tc := range []struct {
		change func(*Handler)
		want   string
	}{
		{func(h *Handler) { h.IntrospectionURL = "" }, "introspection_url: is required"},
		{func(h *Handler) { h.IntrospectionURL = "ftp://x/" }, "introspection_url: must be an absolute http"},
		{func(h *Handler) { h.ClientID = "" }, "client_id: is required"},
		{func(h *Handler) { h.ClientSecret = "" }, "client_secret: is required"},
		{func(h *Handler) { h.IDMaxLength = 1025 }, "id_max_length"},
		{func(h *Handler) { h.IDMinLength, h.IDMaxLength = 10, 5 }, "id_max_length"},
		{func(h *Handler) { h.MaxBody = 1 }, "max_body"},
		{func(h *Handler) { h.Cache = &CacheConfig{Type: "redis", Timeout: 1} }, "cache: redis needs at least one"},
		{func(h *Handler) { h.Cache = &CacheConfig{Type: "redis", URLs: []string{"http://x"}, Timeout: 1} }, "cache: redis URL must look like"},
		{func(h *Handler) { h.CacheSize = -2 }, "cache_size"},
		{func(h *Handler) { h.Operations = []string{"update", "upsert"} }, `operations: unknown operation "upsert"`},
		{func(h *Handler) { h.UserClaim = "ext." }, "user_claim"},
		{func(h *Handler) { h.UserClaim = "a..b" }, "user_claim"},
		{func(h *Handler) { h.Audiences = []string{""} }, "audiences: an empty value"},
		{func(h *Handler) { h.Issuers = []string{"x", ""} }, "issuers: an empty value"},
		{func(h *Handler) { l := caddy.Duration(-1); h.Leeway = &l }, "leeway: must be between"},
		{func(h *Handler) { h.Scopes = map[string][]string{"read": {"a"}} }, `scopes: unknown operation "read"`},
		{func(h *Handler) { h.Scopes = map[string][]string{"list": {}} }, "scopes: list needs at least one scope"},
		{func(h *Handler) { h.Scopes = map[string][]string{"list": {"a b"}} }, `scopes: list: "a b" is not a scope`},
	} {
		h := good()
		tc.change(h)
		err := h.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
}

// Caddy itself refuses a wrong configuration at load, with the
// subdirective's name in the message.
func TestLoadRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{"client_id gateway", "introspection_url: is required"},
		{"introspection_url http://127.0.0.1:1/i\nclient_id gateway\nevent_types 0 x/y", "event_types"},
		{"introspection_url http://127.0.0.1:1/i\nclient_id gateway\nclient_secret s\nevent_types 0 x", `event_types: \"x\" is not an event type: eventType is a number`},
		{"introspection_url http://127.0.0.1:1/i\nclient_id gateway\nclient_secret s\nevent_types 0 1a", `event_types: \"1a\" is not an event type`},
		{"introspection_url http://127.0.0.1:1/i\nclient_id gateway\nclient_secret s\noperations list remove", `operations: unknown operation \"remove\"`},
		{"introspection_url http://127.0.0.1:1/i\nclient_id gateway\nclient_secret {env.PCE_TEST_SURELY_UNSET}", "client_secret: resolves to an empty value"},
		{"introspection_url http://127.0.0.1:1/i\nclient_id {env.PCE_TEST_SURELY_UNSET}\nclient_secret s", "client_id: resolves to an empty value"},
		{"introspection_url http://127.0.0.1:1/i\nclient_id gateway\nclient_secret s\nkey_secret {env.PCE_TEST_SURELY_UNSET}", "key_secret: resolves to an empty value"},
	} {
		caddytest.AssertLoadError(t, globalOptions()+"\nhttp://127.0.0.1:1 {\n\tvoipnow_pce {\n"+tc.block+"\n\t}\n}\n", "caddyfile", tc.want)
	}
}
