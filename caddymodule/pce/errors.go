package pce

import "encoding/json"

// Error is an answer the gateway makes itself: an HTTP status and the legacy
// API's error code and message.
type Error struct {
	// Status is the HTTP status code of the answer.
	Status int
	// Code is the legacy API's error code, e.g. "pce_id_invalid".
	Code string
	// Message is the human-readable message, the documented one where the
	// legacy API documents it.
	Message string

	body []byte // precomputed Body for the package's own errors
}

// Error implements the error interface as "code: message".
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Body returns the JSON error document
// {"error":{"code":"...","message":"..."}}. For the package's errors it is
// computed once; callers must not modify it.
func (e *Error) Body() []byte {
	if e.body != nil {
		return e.body
	}
	return errorBody(e.Code, e.Message)
}

func errorBody(code, message string) []byte {
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	doc.Error.Code = code
	doc.Error.Message = message
	b, err := json.Marshal(&doc)
	if err != nil { // cannot happen for two strings
		return []byte(`{"error":{"code":"internal_server_error","message":"An unexpected error occurred in the gateway."}}`)
	}
	return b
}

func newError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message, body: errorBody(code, message)}
}

// The gateway's errors. The messages of the codes the legacy page documents
// are the page's own text, verbatim.
var (
	// ErrAccessDenied: missing, malformed, unknown, inactive or expired token.
	ErrAccessDenied = newError(401, "access_denied",
		"The access token is missing, invalid or expired.")
	// ErrInvalidToken is ErrAccessDenied for a request that presented a
	// token (malformed, unknown, inactive or expired): same status, code and
	// body; the handler adds error="invalid_token" to its challenge.
	ErrInvalidToken = newError(401, "access_denied",
		"The access token is missing, invalid or expired.")
	// ErrUserInvalid: the userId path segment is not @me, @viewer, @owner or a numeric User-Id.
	ErrUserInvalid = newError(400, "user_invalid",
		"Value supplied in the URI-Fragment as userId is invalid. It must be @me, @viewer, @owner or a numeric User-Id.")
	// ErrExtensionInvalid: the extension path segment is not an extension number.
	ErrExtensionInvalid = newError(400, "extension_invalid",
		"Value supplied in the URI-Fragment as extension is invalid. The parameter must reference the number of an existing extension or cannot be set to @self.")
	// ErrTypeInvalid: the event type (path or payload) is invalid.
	ErrTypeInvalid = newError(400, "pce_type_invalid",
		"Value supplied in type parameter is missing or invalid. The parameter must be set to one of the following value: 0 for DialIn, 1 for DialOut and 2 for Hangup.")
	// ErrIDInvalid: the event id (path or payload) is invalid.
	ErrIDInvalid = newError(400, "pce_id_invalid",
		"Value supplied in id parameter is invalid. The parameter must be set to an alpha-numeric 32 characters long.")
	// ErrPCEAccessDenied: the token may not manage this user's phone call events.
	ErrPCEAccessDenied = newError(400, "pce_access_denied",
		"You are not allowed to manage the phone call events.")
	// ErrMethodInvalid: the payload's method is invalid.
	ErrMethodInvalid = newError(400, "pce_method_invalid",
		"Value supplied in method parameter is missing or invalid. The parameter must be set to one of the following value: 0 for GET or 1 for POST.")
	// ErrNoteInvalid: the payload's note is invalid.
	ErrNoteInvalid = newError(400, "pce_note_invalid",
		"Value supplied in note parameter is missing or invalid. It must be string and 1024 characters long.")
	// ErrURLInvalid: the payload's url is invalid or targets a private address.
	ErrURLInvalid = newError(400, "pce_url_invalid",
		"Value supplied in request URL parameter is missing or invalid. It must be a valid HTTP URL.")
	// ErrStatusInvalid: the payload's status is invalid.
	ErrStatusInvalid = newError(400, "pce_status_invalid",
		"Value supplied in status parameter is missing or invalid. The parameter must be set to one of the following value: 0 for enabled or 1 for disabled.")
	// ErrPayloadInvalid: the body is not one strict JSON object.
	ErrPayloadInvalid = newError(400, "payload_invalid",
		"The request payload must be one JSON object in valid UTF-8, without duplicate keys.")
	// ErrPayloadTooLarge: the body exceeds the configured maximum size.
	ErrPayloadTooLarge = newError(413, "payload_too_large",
		"The request payload is larger than the gateway accepts.")
	// ErrCreateTypeInvalid: the type of a create payload is missing or
	// invalid, spelled as the legacy Create page spells it.
	ErrCreateTypeInvalid = newError(400, "pcet_type_invalid",
		"Value supplied in type parameter is missing or invalid. The parameter must be set to one of the following value: 0 for DialIn, 1 for DialOut and 2 for Hangup.")
	// ErrMethodNotAllowed: a method the resource path does not have.
	ErrMethodNotAllowed = newError(405, "method_not_allowed",
		"The resource does not support this method.")
	// ErrRequestInvalid: a malformed request no field code describes (a raw
	// '#' in the request target, method overrides that disagree).
	ErrRequestInvalid = newError(400, "request_invalid",
		"The request is malformed.")
	// ErrServiceUnavailable: the token introspection endpoint cannot answer.
	ErrServiceUnavailable = newError(503, "service_unavailable",
		"The authorization service is unavailable. Retry later.")
	// ErrTooManyRequests: the client address spent its budget of lookups
	// of new tokens.
	ErrTooManyRequests = newError(429, "too_many_requests",
		"Too many requests with tokens the gateway has not seen. Retry later.")
	// ErrBackendUnavailable: the backend could not be reached.
	ErrBackendUnavailable = newError(502, "backend_unavailable",
		"The backend service is unavailable. Retry later.")
	// ErrInternal: anything unexpected inside the gateway.
	ErrInternal = newError(500, "internal_server_error",
		"An unexpected error occurred in the gateway.")
)

// Codes returns every error of the package (a new slice on each call), e.g.
// to initialize metrics label sets.
func Codes() []*Error {
	return []*Error{
		ErrAccessDenied, ErrUserInvalid, ErrExtensionInvalid, ErrTypeInvalid,
		ErrIDInvalid, ErrPCEAccessDenied, ErrMethodInvalid, ErrNoteInvalid,
		ErrURLInvalid, ErrStatusInvalid, ErrPayloadInvalid, ErrPayloadTooLarge,
		ErrCreateTypeInvalid, ErrMethodNotAllowed, ErrRequestInvalid,
		ErrServiceUnavailable, ErrTooManyRequests, ErrBackendUnavailable, ErrInternal,
	}
}
