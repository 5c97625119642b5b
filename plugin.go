// Package caddyvoipnowpce registers the voipnow_pce gateway with Caddy, so
// that the module's root path is what xcaddy takes:
//
//	xcaddy build --with github.com/voipnow-pce/caddy-voipnow-pce
//
// The module itself lives in package caddymodule.
package caddyvoipnowpce

import (
	// The handler, its Caddyfile directive and the admin revocation route.
	_ "github.com/voipnow-pce/caddy-voipnow-pce/caddymodule"
)
