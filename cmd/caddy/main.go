// Command caddy is Caddy with its standard modules plus the voipnow_pce
// gateway module.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/voipnow-pce/caddy-voipnow-pce"
)

func main() {
	caddycmd.Main()
}
