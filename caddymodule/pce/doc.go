// Package pce is the pure logic of the phoneCallEvents update contract
// (PUT {base}/extensions/{userId}/{extension}/phoneCallEvents/{eventType}/{eventId}):
// matching and checking the request path, extracting the bearer token,
// authorizing the token's user and scopes against the route, and checking and
// normalizing the JSON payload, plus the gateway's documented error answers.
//
// It imports neither Caddy nor any server or cache code: every function works
// on plain strings and bytes, is safe for concurrent use and never panics on
// client input.
package pce
