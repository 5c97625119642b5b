package pce

import (
	"encoding/json"
	"testing"
)

func TestErrors(t *testing.T) {
	want := map[string]int{
		"access_denied": 401, "user_invalid": 400, "extension_invalid": 400,
		"pce_type_invalid": 400, "pce_id_invalid": 400, "pce_access_denied": 400,
		"pce_method_invalid": 400, "pce_note_invalid": 400, "pce_url_invalid": 400,
		"pce_status_invalid": 400, "payload_invalid": 400, "payload_too_large": 413,
		"pcet_type_invalid": 400, "method_not_allowed": 405, "request_invalid": 400,
		"service_unavailable": 503, "too_many_requests": 429, "backend_unavailable": 502, "internal_server_error": 500,
	}
	codes := Codes()
	if len(codes) != len(want) {
		t.Fatalf("Codes() has %d errors, want %d", len(codes), len(want))
	}
	for _, e := range codes {
		st, ok := want[e.Code]
		if !ok || st != e.Status {
			t.Errorf("%s: status %d, want %d (known %v)", e.Code, e.Status, st, ok)
		}
		delete(want, e.Code)
		if e.Error() != e.Code+": "+e.Message {
			t.Errorf("Error() = %q", e.Error())
		}
		var doc struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(e.Body(), &doc); err != nil || doc.Error.Code != e.Code || doc.Error.Message != e.Message {
			t.Errorf("Body() = %s (%v)", e.Body(), err)
		}
		if want := `{"error":{"code":"` + e.Code + `","message":"`; string(e.Body()[:len(want)]) != want {
			t.Errorf("Body() = %s: not compact", e.Body())
		}
	}
	if string(ErrMethodInvalid.Body()) != `{"error":{"code":"pce_method_invalid","message":"Value supplied in method parameter is missing or invalid. The parameter must be set to one of the following value: 0 for GET or 1 for POST."}}` {
		t.Errorf("method body: %s", ErrMethodInvalid.Body())
	}
	// An Error built by a caller (no precomputed body) still has a body.
	e := &Error{Status: 401, Code: "access_denied", Message: `a "quoted" <message>`}
	var doc map[string]map[string]string
	if err := json.Unmarshal(e.Body(), &doc); err != nil || doc["error"]["message"] != e.Message {
		t.Errorf("caller error body %s: %v", e.Body(), err)
	}
}
