package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/procs"
)

// updatePath is the page's update request.
const updatePath = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"

// The mix, per tick of the pacer (a fresh tick sends the same new token to
// both instances at once: two requests).
const (
	shareHot      = 0.45
	shareWarming  = 0.12 // revocable tokens before their revocation (valid)
	shareFresh    = 0.08
	shareGarbage  = 0.10
	hotTokens     = 16
	warmFor       = 1500 * time.Millisecond
	adminRetry    = 200 * time.Millisecond
	clientTimeout = 15 * time.Second
)

// record is one answer (or transport error) the harness got.
type record struct {
	kind       string // at issue time
	tok        *token // nil for garbage and flood
	inst       int
	start, end time.Time
	status     int
	err        string // transport error class, "" if answered
}

// revocation is one token revoked at the identity provider and then at
// one instance's admin endpoint (retried until a 200).
type revocation struct {
	tok               *token
	inst              int
	attempts, non200s int
	firstErr          string
	delay             time.Duration // from the first attempt to the 200; -1: never
}

// interval is a time Redis could not be heard (to is zero while it lasts).
type interval struct{ from, to time.Time }

// driver sends the steady mix at rate ticks/s over both instances and
// revokes tokens continuously.
type driver struct {
	gws     [2]*procs.Caddy
	clients [2]*http.Client
	idp     *idp
	rate    int
	plain   bool // targets are plain Caddy: no admin revocation

	revokeEvery time.Duration // 0: no revocations

	hot []*token

	mu      sync.Mutex
	warming []*token
	revoked []*token
	recs    []record
	revs    []*revocation
	downs   []interval

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // requests in flight
	loops  sync.WaitGroup // pacer and revoker
	adminc *http.Client
	seq    atomic.Int64
}

func newClient(local string, conns int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
		Proxy: nil, DialContext: d.DialContext, MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns,
		IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
}

func newDriver(gws [2]*procs.Caddy, p *idp, rate int, plain bool) *driver {
	d := &driver{gws: gws, idp: p, rate: rate, plain: plain,
		adminc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	for i := range d.clients {
		d.clients[i] = newClient("127.0.0.1", 128)
	}
	for range hotTokens {
		d.hot = append(d.hot, p.issue("hv", false))
	}
	return d
}

// send makes one update request and records it (when rec).
func send(ctx context.Context, c *http.Client, base, tok string) (status int, errClass string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+updatePath, bytes.NewReader([]byte("{}")))
	if err != nil {
		return 0, err.Error()
	}
	req.Header["Authorization"] = []string{"Bearer " + tok}
	req.Header["Content-Type"] = []string{"application/json"}
	res, err := c.Do(req)
	if err != nil {
		return 0, errorClass(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, ""
}

// errorClass is a short name of a transport error, for the report.
func errorClass(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "Timeout exceeded") || strings.Contains(s, "timeout"):
		return "timeout"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "broken pipe"):
		return "broken pipe"
	case errors.Is(err, io.EOF) || strings.Contains(s, "EOF"):
		return "EOF (server closed the connection)"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if len(s) > 80 {
		s = s[len(s)-80:]
	}
	return s
}

func (d *driver) do(c *http.Client, kind string, t *token, value string, inst int) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		start := time.Now()
		// Not d.ctx: a request in flight when the run stops is waited for.
		status, e := send(context.Background(), c, d.gws[inst].Base, value)
		r := record{kind: kind, tok: t, inst: inst, start: start, end: time.Now(), status: status, err: e}
		d.mu.Lock()
		d.recs = append(d.recs, r)
		d.mu.Unlock()
	}()
}

// warmHot caches every hot token on both instances before the run.
func (d *driver) warmHot(ctx context.Context) {
	for _, t := range d.hot {
		for i := range d.gws {
			_, _ = send(ctx, d.clients[i], d.gws[i].Base, t.value)
		}
	}
}

func (d *driver) start(ctx context.Context) {
	d.ctx, d.cancel = context.WithCancel(ctx)
	d.loops.Add(2)
	go d.pace()
	go d.revoker()
}

// stop ends the traffic and waits for every request in flight.
func (d *driver) stop() {
	d.cancel()
	d.loops.Wait()
	d.wg.Wait()
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}

func (d *driver) pick(list []*token) *token {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(list) == 0 {
		return nil
	}
	return list[rand.IntN(len(list))]
}

func (d *driver) pace() {
	defer d.loops.Done()
	tick := time.NewTicker(time.Second / time.Duration(d.rate))
	defer tick.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-tick.C:
		}
		inst := rand.IntN(2)
		x := rand.Float64()
		switch {
		case x < shareHot:
			t := d.hot[rand.IntN(len(d.hot))]
			d.do(d.clients[inst], kindValid, t, t.value, inst)
		case x < shareHot+shareWarming:
			d.mu.Lock()
			w := d.warming
			d.mu.Unlock()
			t := d.pick(w)
			if t == nil {
				t = d.hot[rand.IntN(len(d.hot))]
			}
			d.do(d.clients[inst], kindValid, t, t.value, inst)
		case x < shareHot+shareWarming+shareFresh:
			t := d.idp.issue("fr", false)
			for i := range d.gws {
				d.do(d.clients[i], kindFresh, t, t.value, i)
			}
		case x < shareHot+shareWarming+shareFresh+shareGarbage:
			d.do(d.clients[inst], kindGarbage, nil, randToken("gb"), inst)
		default:
			d.mu.Lock()
			rv := d.revoked
			d.mu.Unlock()
			t := d.pick(rv)
			kind := kindRevoked
			if t == nil {
				t, kind = d.hot[rand.IntN(len(d.hot))], kindValid
			}
			d.do(d.clients[inst], kind, t, t.value, inst)
		}
	}
}

// revoker issues a revocable token every revokeEvery (used on both
// instances at once so that both cache it), and revokes each one warmFor
// later: at the identity provider, then on one instance's admin endpoint
// (alternating), retrying a non-200 until a 200 or the end of the run.
func (d *driver) revoker() {
	defer d.loops.Done()
	if d.revokeEvery <= 0 {
		return
	}
	tick := time.NewTicker(d.revokeEvery)
	defer tick.Stop()
	type pending struct {
		t  *token
		at time.Time
	}
	var queue []pending
	n := 0
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-tick.C:
		}
		t := d.idp.issue("rv", true)
		for i := range d.gws {
			d.do(d.clients[i], kindFresh, t, t.value, i)
		}
		d.mu.Lock()
		d.warming = append(d.warming, t)
		d.mu.Unlock()
		queue = append(queue, pending{t, time.Now()})
		for len(queue) > 0 && time.Since(queue[0].at) >= warmFor {
			t := queue[0].t
			queue = queue[1:]
			d.mu.Lock()
			if i := indexOf(d.warming, t); i >= 0 {
				d.warming = append(d.warming[:i:i], d.warming[i+1:]...)
			}
			t.revokedAt.Store(time.Now().UnixNano())
			d.revoked = append(d.revoked, t)
			d.mu.Unlock()
			if d.plain {
				continue
			}
			rv := &revocation{tok: t, inst: n % 2, delay: -1}
			n++
			d.mu.Lock()
			d.revs = append(d.revs, rv)
			d.mu.Unlock()
			d.loops.Add(1)
			go d.adminRevoke(rv)
		}
	}
}

func indexOf(list []*token, t *token) int {
	for i, x := range list {
		if x == t {
			return i
		}
	}
	return -1
}

func (d *driver) adminRevoke(rv *revocation) {
	defer d.loops.Done()
	first := time.Now()
	body := `{"token":"` + rv.tok.value + `"}`
	for d.ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(d.ctx, http.MethodPost, d.gws[rv.inst].Admin+"/voipnow_pce/revoke", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := d.adminc.Do(req)
		status := 0
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			status = res.StatusCode
			if status != http.StatusOK && rv.firstErr == "" {
				var a struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal(b, &a)
				rv.firstErr = strings.TrimSpace(res.Status + " " + a.Error)
			}
		} else if rv.firstErr == "" && d.ctx.Err() == nil {
			rv.firstErr = errorClass(err)
		}
		d.mu.Lock()
		rv.attempts++
		if status == http.StatusOK {
			rv.tok.firstOK.Store(time.Now().UnixNano())
			rv.delay = time.Since(first)
			d.mu.Unlock()
			return
		}
		rv.non200s++
		d.mu.Unlock()
		select {
		case <-d.ctx.Done():
		case <-time.After(adminRetry):
		}
	}
}

// redisDown marks the start of a time in which the instances cannot hear
// Redis; the returned func marks its end.
func (d *driver) redisDown() func() {
	d.mu.Lock()
	d.downs = append(d.downs, interval{from: time.Now()})
	i := len(d.downs) - 1
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.downs[i].to = time.Now()
		d.mu.Unlock()
	}
}

// flood is one client address (127.0.0.2) sending distinct garbage tokens
// as fast as workers closed loops allow, to both instances in turn, until
// ctx ends.
func (d *driver) flood(ctx context.Context, workers int) {
	c := newClient("127.0.0.2", workers)
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := w % 2
			for ctx.Err() == nil {
				start := time.Now()
				status, e := send(ctx, c, d.gws[inst].Base, randToken("fl"))
				if ctx.Err() != nil {
					return
				}
				r := record{kind: kindFlood, inst: inst, start: start, end: time.Now(), status: status, err: e}
				d.mu.Lock()
				d.recs = append(d.recs, r)
				d.mu.Unlock()
				inst = 1 - inst
			}
		}()
	}
	wg.Wait()
}

// reloader POSTs each instance's own Caddyfile to its admin /load every
// period until ctx ends (Cache-Control: must-revalidate: without it Caddy
// skips a config equal to the running one). It returns the answers'
// counts by status.
func reloader(ctx context.Context, gws [2]*procs.Caddy, period time.Duration) map[string]int {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	out := map[string]int{}
	var mu sync.Mutex
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		var wg sync.WaitGroup
		for _, g := range gws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, g.Admin+"/load", strings.NewReader(g.Config))
				req.Header.Set("Content-Type", "text/caddyfile")
				req.Header.Set("Cache-Control", "must-revalidate")
				res, err := c.Do(req)
				k := ""
				if err != nil {
					k = errorClass(err)
				} else {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					k = res.Status
				}
				mu.Lock()
				out[k]++
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
}
