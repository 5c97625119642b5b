package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Allowances of the contract (section 7) that the classification uses.
const (
	revokeAllowance = time.Second // a 200 of /voipnow_pce/revoke holds everywhere within 1 s
	heartbeat       = time.Second // the revocation record's blocking read
	feedSlack       = 500 * time.Millisecond
)

// kindStats are the answers to one token kind.
type kindStats struct {
	Requests      int     `json:"requests"`
	OK            int     `json:"ok_2xx"`
	S401          int     `json:"status_401"`
	S403          int     `json:"status_403"`
	S429          int     `json:"status_429"`
	S503          int     `json:"status_503"`
	Other         int     `json:"status_other"`
	Errors        int     `json:"transport_errors"`
	FailOpen      int     `json:"fail_open"`
	FailOpenFeed  int     `json:"fail_open_feed_down"` // of FailOpen: by the revocation_grace rule
	FalseRefusal  int     `json:"false_refusals"`
	AcceptedEarly int     `json:"revoked_accepted_within_allowance"`
	Ambiguous     int     `json:"revoked_during_request"`
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
	Max           float64 `json:"max_ms"`
	lat           []time.Duration
}

// phaseLat is the valid tokens' latency in one phase.
type phaseLat struct {
	Requests int     `json:"requests"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// row is one scenario's result on one pair of instances.
type row struct {
	Scenario       string                `json:"scenario"`
	Target         string                `json:"target"` // gateway or plain
	Fault          string                `json:"fault"`
	Seconds        float64               `json:"seconds"`
	Requests       int                   `json:"requests"`
	FailOpen       int                   `json:"fail_open"`
	FalseRefusals  int                   `json:"false_refusals"`
	S503           int                   `json:"status_503"`
	S429           int                   `json:"status_429"`
	Errors         int                   `json:"transport_errors"`
	ErrorKinds     map[string]int        `json:"transport_error_kinds,omitempty"`
	Leaks          int                   `json:"backend_leaks"`
	P50            float64               `json:"valid_p50_ms"`
	P99            float64               `json:"valid_p99_ms"`
	Max            float64               `json:"valid_max_ms"`
	Kinds          map[string]*kindStats `json:"kinds"`
	Phases         map[string]phaseLat   `json:"valid_latency_by_phase"`
	Calls          map[string]int64      `json:"introspection_calls"`
	FreshTokens    int                   `json:"fresh_tokens"`
	FreshMaxCalls  int64                 `json:"fresh_max_calls_per_token"`
	FreshMulti     int                   `json:"fresh_tokens_with_more_than_one_call"`
	FaultFresh     int                   `json:"fresh_tokens_in_fault"`
	FaultFreshMax  int64                 `json:"fresh_max_calls_per_token_in_fault"`
	FaultFreshMean float64               `json:"fresh_mean_calls_per_token_in_fault"`
	Revocations    int                   `json:"revocations"`
	RevokedFirstOK int                   `json:"revocations_200_first_try"`
	RevokedNever   int                   `json:"revocations_never_200"`
	RevokeMaxDelay float64               `json:"revocation_max_delay_to_200_ms"`
	RevokeErrors   map[string]int        `json:"revocation_first_errors,omitempty"`
	Reloads        map[string]int        `json:"reloads,omitempty"`
	Extra          map[string]any        `json:"extra,omitempty"`
	Notes          []string              `json:"notes,omitempty"`
	Samples        []string              `json:"fail_open_samples,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(l []time.Duration, q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	return ms(l[int(q*float64(len(l)-1))])
}

// classify turns a run's records into a row.
func classify(sc, target string, d *driver, hits []backendHit, calls map[string]int64, faultStart, faultEnd time.Time, grace time.Duration) *row {
	r := &row{Scenario: sc, Target: target, Kinds: map[string]*kindStats{}, Phases: map[string]phaseLat{},
		Calls: calls, ErrorKinds: map[string]int{}, RevokeErrors: map[string]int{}}
	d.mu.Lock()
	recs, revs, downs := d.recs, d.revs, d.downs
	d.mu.Unlock()
	for _, k := range kinds {
		r.Kinds[k] = &kindStats{}
	}
	// feedDownAt: whether at t the instances had been unable to hear Redis
	// since before t-grace-heartbeat-slack, and the token was revoked at
	// the identity provider before that too.
	allow := grace + heartbeat + feedSlack
	feedDownLate := func(t time.Time, revokedAt time.Time) bool {
		for _, iv := range downs {
			to := iv.to
			if to.IsZero() {
				to = time.Now()
			}
			from := iv.from
			if revokedAt.After(from) {
				from = revokedAt
			}
			if t.After(from.Add(allow)) && t.Before(to) {
				return true
			}
		}
		return false
	}
	late := func(t *token, at time.Time) (bool, bool) {
		if ok := t.firstOK.Load(); ok != 0 && at.After(time.Unix(0, ok).Add(revokeAllowance)) {
			return true, false
		}
		if feedDownLate(at, time.Unix(0, t.revokedAt.Load())) {
			return true, true
		}
		return false, false
	}
	var first, last time.Time
	phase := map[string][]time.Duration{}
	var hot []time.Duration // the hot tokens: cached all along
	for _, rec := range recs {
		if first.IsZero() || rec.start.Before(first) {
			first = rec.start
		}
		if rec.end.After(last) {
			last = rec.end
		}
		kind := rec.kind
		ambiguous := false
		if rec.tok != nil && rec.tok.revocable {
			if rv := rec.tok.revokedAt.Load(); rv != 0 {
				rvt := time.Unix(0, rv)
				switch {
				case !rec.start.Before(rvt):
					kind = kindRevoked
				case rec.end.After(rvt):
					kind, ambiguous = kindRevoked, true
				default:
					kind = kindNew
				}
			} else if kind == kindValid {
				kind = kindNew
			}
		}
		ks := r.Kinds[kind]
		ks.Requests++
		r.Requests++
		if rec.err != "" {
			ks.Errors++
			r.Errors++
			r.ErrorKinds[rec.err]++
			continue
		}
		lat := rec.end.Sub(rec.start)
		ks.lat = append(ks.lat, lat)
		if kind == kindValid && !rec.tok.revocable {
			hot = append(hot, lat)
			p := "before"
			if !rec.start.Before(faultStart) {
				p = "during"
			}
			if !rec.start.Before(faultEnd) {
				p = "after"
			}
			phase[p] = append(phase[p], lat)
		}
		s := rec.status
		switch {
		case s >= 200 && s < 300:
			ks.OK++
		case s == 401:
			ks.S401++
		case s == 403:
			ks.S403++
		case s == 429:
			ks.S429++
		case s == 503:
			ks.S503++
		default:
			ks.Other++
		}
		if s == 429 {
			r.S429++
		}
		if s == 503 {
			r.S503++
		}
		if target == "plain" {
			continue
		}
		switch kind {
		case kindValid, kindNew, kindFresh:
			if s == 401 || s == 403 {
				ks.FalseRefusal++
				r.FalseRefusals++
			}
		case kindGarbage, kindFlood:
			if s >= 200 && s < 300 {
				ks.FailOpen++
				r.FailOpen++
				r.sample(rec, "garbage accepted")
			}
		case kindRevoked:
			if ambiguous {
				ks.Ambiguous++
				continue
			}
			if s >= 200 && s < 300 {
				if isLate, feed := late(rec.tok, rec.start); isLate {
					ks.FailOpen++
					r.FailOpen++
					if feed {
						ks.FailOpenFeed++
					}
					r.sample(rec, fmt.Sprintf("revoked accepted (feed rule %v)", feed))
				} else {
					ks.AcceptedEarly++
				}
			}
		}
	}
	r.Seconds = last.Sub(first).Seconds()
	for _, ks := range r.Kinds {
		slices.Sort(ks.lat)
		ks.P50, ks.P99 = pct(ks.lat, 0.5), pct(ks.lat, 0.99)
		if n := len(ks.lat); n > 0 {
			ks.Max = ms(ks.lat[n-1])
		}
	}
	slices.Sort(hot)
	r.P50, r.P99 = pct(hot, 0.5), pct(hot, 0.99)
	if len(hot) > 0 {
		r.Max = ms(hot[len(hot)-1])
	}
	for p, l := range phase {
		slices.Sort(l)
		r.Phases[p] = phaseLat{Requests: len(l), P50: pct(l, 0.5), P99: pct(l, 0.99), Max: ms(l[len(l)-1])}
	}

	// What reached the backend that should not have.
	if target != "plain" {
		for _, h := range hits {
			switch tokenKind(h.token) {
			case kindGarbage, kindFlood:
				r.Leaks++
			default:
				t := d.idp.lookup(h.token)
				if t == nil {
					r.Leaks++
					continue
				}
				if t.revocable && t.revokedAt.Load() != 0 {
					if isLate, _ := late(t, h.at.Add(-50*time.Millisecond)); isLate {
						r.Leaks++
					}
				}
			}
		}
	}

	// Introspection calls per fresh token (each was sent to both
	// instances at once).
	seen := map[*token]time.Time{}
	for _, rec := range recs {
		if rec.kind == kindFresh && !rec.tok.revocable {
			seen[rec.tok] = rec.start
		}
	}
	var faultCalls int64
	for t, at := range seen {
		n := t.calls.Load()
		r.FreshTokens++
		r.FreshMaxCalls = max(r.FreshMaxCalls, n)
		if n > 1 {
			r.FreshMulti++
		}
		if !at.Before(faultStart) && at.Before(faultEnd) {
			r.FaultFresh++
			faultCalls += n
			r.FaultFreshMax = max(r.FaultFreshMax, n)
		}
	}
	if r.FaultFresh > 0 {
		r.FaultFreshMean = float64(faultCalls) / float64(r.FaultFresh)
	}

	for _, rv := range revs {
		r.Revocations++
		if rv.attempts == 1 && rv.delay >= 0 {
			r.RevokedFirstOK++
		}
		if rv.delay < 0 {
			r.RevokedNever++
		} else {
			r.RevokeMaxDelay = max(r.RevokeMaxDelay, ms(rv.delay))
		}
		if rv.firstErr != "" {
			e := fpRE.ReplaceAllString(rv.firstErr, "<fingerprint>")
			if len(e) > 120 {
				e = e[:120]
			}
			r.RevokeErrors[e]++
		}
	}
	return r
}

var fpRE = regexp.MustCompile(`\b[0-9a-f]{12}\b`)

func (r *row) sample(rec record, why string) {
	if len(r.Samples) >= 10 {
		return
	}
	extra := ""
	if rec.tok != nil {
		extra = fmt.Sprintf(" revoked at IdP %s, admin 200 %s",
			fmtNano(rec.tok.revokedAt.Load()), fmtNano(rec.tok.firstOK.Load()))
	}
	r.Samples = append(r.Samples, fmt.Sprintf("%s: instance %d, started %s, status %d, %s%s",
		why, rec.inst, rec.start.Format("15:04:05.000"), rec.status, rec.end.Sub(rec.start).Round(time.Millisecond), extra))
}

func fmtNano(n int64) string {
	if n == 0 {
		return "never"
	}
	return time.Unix(0, n).Format("15:04:05.000")
}

// report is the whole run.
type report struct {
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Machine  map[string]string `json:"machine"`
	Options  map[string]string `json:"options"`
	Rows     []*row            `json:"rows"`
	FailOpen int               `json:"fail_open"`
	FalseRef int               `json:"false_refusals"`
	Leaks    int               `json:"backend_leaks"`
}

func callsCell(c map[string]int64) string {
	return fmt.Sprintf("%d / %d / %d / %d / %d", c[kindValid], c[kindFresh], c[kindGarbage], c[kindRevoked], c[kindFlood])
}

func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pce-chaos results\n\n%s, %s; %s\n\n", rep.Started.Format("2006-01-02 15:04 MST"), rep.Machine["summary"], rep.Options["summary"])
	b.WriteString("| scenario | target | fault | requests | fail-open | false refusals | 503 | 429 | conn errors | backend leaks | cached valid p50 / p99 / max ms | introspection calls valid / fresh / garbage / revoked / flood | calls per fresh token (max; mean for those sent during the fault) | revocations (200 at once / never) |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|\n")
	for _, r := range rep.Rows {
		fresh := fmt.Sprintf("%d", r.FreshMaxCalls)
		if r.FaultFresh > 0 {
			fresh += fmt.Sprintf("; %.2f", r.FaultFreshMean)
		}
		revs := "-"
		if r.Revocations > 0 {
			revs = fmt.Sprintf("%d (%d / %d)", r.Revocations, r.RevokedFirstOK, r.RevokedNever)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %d | %.1f / %.1f / %.0f | %s | %s | %s |\n",
			r.Scenario, r.Target, r.Fault, r.Requests, r.FailOpen, r.FalseRefusals, r.S503, r.S429, r.Errors, r.Leaks,
			r.P50, r.P99, r.Max, callsCell(r.Calls), fresh, revs)
	}
	b.WriteString("\n## Latency per kind (ms, p50 / p99 / max) and answers\n\n")
	b.WriteString("| scenario | target | kind | requests | 2xx | 401 | 429 | 503 | other | errors | p50 / p99 / max |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rep.Rows {
		for _, k := range kinds {
			ks := r.Kinds[k]
			if ks == nil || ks.Requests == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %d | %.1f / %.1f / %.0f |\n",
				r.Scenario, r.Target, k, ks.Requests, ks.OK, ks.S401, ks.S429, ks.S503, ks.Other+ks.S403, ks.Errors, ks.P50, ks.P99, ks.Max)
		}
	}
	b.WriteString("\n## Cached valid tokens (the 16 hot ones): latency before / during / after the fault (ms, p50 / p99)\n\n")
	b.WriteString("| scenario | target | before | during | after |\n|---|---|---|---|---|\n")
	for _, r := range rep.Rows {
		cell := func(p string) string {
			l, ok := r.Phases[p]
			if !ok {
				return "-"
			}
			return fmt.Sprintf("%.1f / %.1f (n=%d)", l.P50, l.P99, l.Requests)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Target, cell("before"), cell("during"), cell("after"))
	}
	b.WriteString("\n## Notes\n\n")
	for _, r := range rep.Rows {
		var parts []string
		if len(r.ErrorKinds) > 0 {
			parts = append(parts, "transport errors: "+countsCell(r.ErrorKinds))
		}
		if len(r.Reloads) > 0 {
			parts = append(parts, "/load answers: "+countsCell(r.Reloads))
		}
		if len(r.RevokeErrors) > 0 {
			parts = append(parts, "revocations' first non-200: "+countsCell(r.RevokeErrors))
		}
		if r.RevokeMaxDelay > 0 {
			parts = append(parts, fmt.Sprintf("longest wait for a revocation's 200: %.0f ms", r.RevokeMaxDelay))
		}
		if ks := r.Kinds[kindRevoked]; ks != nil && ks.AcceptedEarly > 0 {
			parts = append(parts, fmt.Sprintf("revoked tokens accepted inside the allowance (before admin 200 + 1 s): %d", ks.AcceptedEarly))
		}
		for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
			parts = append(parts, fmt.Sprintf("%s: %v", k, r.Extra[k]))
		}
		parts = append(parts, r.Notes...)
		parts = append(parts, r.Samples...)
		if len(parts) > 0 {
			fmt.Fprintf(&b, "- **%s (%s)**: %s\n", r.Scenario, r.Target, strings.Join(parts, "; "))
		}
	}
	return b.String()
}

func countsCell(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func (rep *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644)
}
