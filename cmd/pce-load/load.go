package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	goodPath = "/uapi/extensions/@me/0003*210/phoneCallEvents/0/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	// badPath has eventType 9: the gateway answers 400 pce_type_invalid.
	badPath = "/uapi/extensions/@me/0003*210/phoneCallEvents/9/NqeyDRqo4FtabmFj8gNWq3hsiGNYyq"
	payload = `{"method": "1", "note": "I want to use POST for my event", "url": "http://myevent.com/SaveMyPhoneCallDetails", "status": "1"}`
	// listPath lists the DialIn events, a page of 20.
	listPath = "/uapi/extensions/@me/0003*210/phoneCallEvents/0?count=20&startIndex=0"
	// createPath and createPayload: the create page's example, in short.
	createPath    = "/uapi/extensions/@me/0003*210/phoneCallEvents"
	createPayload = `{"type": "0", "method": "1", "note": "I want to use POST for my event", "url": "http://myevent.com/SaveMyPhoneCallDetails", "status": "1"}`
)

// The operations a load request may stand for ("" is the update).
const (
	opList   = "list"
	opCreate = "create"
)

// request is what one load request carries; seq numbers the requests of a
// run from 0.
type request struct {
	op    string // "" (the update), opList or opCreate
	bad   bool   // the bad eventType (update only)
	token string // "" means the run is out of tokens: stop
}

// newTransport is the one client configuration for every target: N
// keep-alive HTTP/1.1 connections to loopback, no proxy, no compression.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// loadResult is one target's share of a paired run.
type loadResult struct {
	Requests   int64         // started (and answered) inside the measuring window
	Unexpected int64         // answers with another status than expected (whole run)
	Errors     int64         // transport errors (whole run)
	Elapsed    time.Duration // time this target was driven inside the window
	Exhausted  bool          // the token supply ran out before the end
	Issued     int64         // requests started on this target (warm-up included)
	p          []time.Duration
}

func (r *loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile of the latencies in the measuring window.
func (r *loadResult) Percentile(q float64) time.Duration {
	if len(r.p) == 0 {
		return 0
	}
	i := int(q * float64(len(r.p)-1))
	return r.p[i]
}

// runPair drives two targets with the same conns keep-alive clients (one
// connection pool per target, the same settings), alternating between them
// every slice: all clients send to one target for a slice, then to the
// other, so that the machine's background noise hits both alike. After a
// warm-up (alternating too), it measures until each target has been driven
// for dur. first is the target of the first slice. next gives request seq
// (numbered over both targets); want is the status it must get from target
// i.
func runPair(ctx context.Context, bases [2]string, first, conns int, warmup, dur, slice time.Duration,
	next func(seq int64) request, want func(rq request, target int) int) [2]*loadResult {
	var clients [2]*http.Client
	for i := range clients {
		tr := newTransport(conns)
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	body, createBody := []byte(payload), []byte(createPayload)
	var goodURL, badURL, listURL, createURL [2]string
	for i, b := range bases {
		goodURL[i], badURL[i], listURL[i], createURL[i] = b+goodPath, b+badPath, b+listPath, b+createPath
	}

	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(2 * dur)
	target := func(t time.Time) int {
		k := int64(t.Sub(start) / slice)
		return int((k + int64(first)) % 2)
	}

	var seq atomic.Int64
	var issued, unexpected, errs [2]atomic.Int64
	var exhaustedAt atomic.Int64 // unix ns, 0 = never
	lat := make([][2][]time.Duration, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine [2][]time.Duration
			for i := range mine {
				mine[i] = make([]time.Duration, 0, 1<<13)
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				tg := target(t0)
				rq := next(seq.Add(1) - 1)
				if rq.token == "" {
					exhaustedAt.CompareAndSwap(0, t0.UnixNano())
					break
				}
				issued[tg].Add(1)
				method, u, b := http.MethodPut, goodURL[tg], body
				switch {
				case rq.op == opList:
					method, u, b = http.MethodGet, listURL[tg], nil
				case rq.op == opCreate:
					method, u, b = http.MethodPost, createURL[tg], createBody
				case rq.bad:
					u = badURL[tg]
				}
				var rd io.Reader
				if b != nil {
					rd = bytes.NewReader(b)
				}
				req, err := http.NewRequestWithContext(ctx, method, u, rd)
				if err != nil {
					errs[tg].Add(1)
					continue
				}
				req.Header["Authorization"] = []string{"Bearer " + rq.token}
				if b != nil {
					req.Header["Content-Type"] = []string{"application/json"}
				}
				res, err := clients[tg].Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs[tg].Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				t1 := time.Now()
				if res.StatusCode != want(rq, tg) {
					unexpected[tg].Add(1)
				}
				if !t0.Before(measureFrom) {
					mine[tg] = append(mine[tg], t1.Sub(t0))
				}
			}
			lat[w] = mine
		}()
	}
	wg.Wait()

	stop := end
	exhausted := false
	if ex := exhaustedAt.Load(); ex != 0 {
		exhausted = true
		if t := time.Unix(0, ex); t.Before(stop) {
			stop = t
		}
	}
	var out [2]*loadResult
	for i := range out {
		out[i] = &loadResult{Unexpected: unexpected[i].Load(), Errors: errs[i].Load(), Issued: issued[i].Load(), Exhausted: exhausted}
	}
	// Time each target was driven inside the window, slice by slice.
	for t := measureFrom; t.Before(stop); {
		k := t.Sub(start) / slice
		sliceEnd := start.Add((k + 1) * slice)
		if sliceEnd.After(stop) {
			sliceEnd = stop
		}
		out[target(t)].Elapsed += sliceEnd.Sub(t)
		t = sliceEnd
	}
	for _, l := range lat {
		for i := range out {
			out[i].p = append(out[i].p, l[i]...)
		}
	}
	for i := range out {
		out[i].Requests = int64(len(out[i].p))
		slices.Sort(out[i].p)
	}
	return out
}

// burst sends, for each token in turn, conns simultaneous requests with
// that token (a fresh token hit by every client at once), twice over the
// list; it returns the transport errors and unexpected statuses.
func burst(ctx context.Context, base string, conns int, tokens []string) (errors, unexpected int64) {
	tr := newTransport(conns)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := []byte(payload)
	var errs, bad atomic.Int64
	for range 2 {
		for _, tok := range tokens {
			if ctx.Err() != nil {
				return errs.Load(), bad.Load()
			}
			gate := make(chan struct{})
			var wg sync.WaitGroup
			for range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+goodPath, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					<-gate
					res, err := client.Do(req)
					if err != nil {
						errs.Add(1)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						bad.Add(1)
					}
				}()
			}
			close(gate)
			wg.Wait()
		}
	}
	return errs.Load(), bad.Load()
}
