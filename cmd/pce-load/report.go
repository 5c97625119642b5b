package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/introspect"
	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/tokencache"
)

// record is one timed run against one target.
type record struct {
	Scenario       string  `json:"scenario"`
	Round          int     `json:"round"`
	Target         string  `json:"target"`
	Plain          bool    `json:"plain"`
	RPS            float64 `json:"rps"`
	P50            float64 `json:"p50_ms"`
	P90            float64 `json:"p90_ms"`
	P99            float64 `json:"p99_ms"`
	Requests       int64   `json:"requests"`
	Errors         int64   `json:"errors"`
	Unexpected     int64   `json:"unexpected_status"`
	Exhausted      bool    `json:"tokens_exhausted,omitempty"`
	Issued         int64   `json:"issued"`
	TokensUsed     int64   `json:"tokens_used"`
	Introspections int64   `json:"introspections"`
}

// summary is one scenario over all rounds.
type summary struct {
	Scenario      string    `json:"scenario"`
	Title         string    `json:"title"`
	Gateway       string    `json:"gateway"`
	PlainRPS      float64   `json:"plain_rps"`
	GatewayRPS    float64   `json:"gateway_rps"`
	Ratio         float64   `json:"ratio"`
	Ratios        []float64 `json:"ratios"`
	PlainP50      float64   `json:"plain_p50_ms"`
	PlainP99      float64   `json:"plain_p99_ms"`
	GatewayP50    float64   `json:"gateway_p50_ms"`
	GatewayP99    float64   `json:"gateway_p99_ms"`
	DeltaP99      float64   `json:"delta_p99_ms"`
	Introspection int64     `json:"gateway_introspections"`
	TokensUsed    int64     `json:"gateway_tokens_used"`
	Problems      int64     `json:"errors_or_unexpected"`
	Target        string    `json:"target,omitempty"`
	Met           *bool     `json:"met,omitempty"`
}

type burstCheck struct {
	Target           string `json:"target"`
	Clients          int    `json:"clients"`
	Tokens           int    `json:"tokens"`
	RequestsPerToken int    `json:"requests_per_token"`
	Introspections   int64  `json:"introspections"`
	Min              int64  `json:"min_per_token"`
	Max              int64  `json:"max_per_token"`
	Errors           int64  `json:"errors"`
	Unexpected       int64  `json:"unexpected_status"`
}

type rssInfo struct {
	Target string `json:"target"`
	KiB    int64  `json:"rss_kib"`
}

type memInfo struct {
	Tokens        int     `json:"tokens"`
	MiB           float64 `json:"heap_mib"`
	BytesPerToken float64 `json:"bytes_per_token"`
}

type report struct {
	Machine   map[string]string `json:"machine"`
	Options   map[string]string `json:"options"`
	Started   time.Time         `json:"started"`
	Runs      []record          `json:"runs"`
	Summaries []summary         `json:"summaries"`
	Bursts    []burstCheck      `json:"one_introspection_per_token"`
	Memory    memInfo           `json:"memory_100k_tokens"`
	RSS       []rssInfo         `json:"caddy_rss_at_end"`
	scenarios []*scenario
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize pairs each gateway run with the plain run of the same
// scenario and round.
func (r *report) summarize() {
	byScenario := map[string][]record{}
	var order []string
	for _, rec := range r.Runs {
		if _, ok := byScenario[rec.Scenario]; !ok {
			order = append(order, rec.Scenario)
		}
		byScenario[rec.Scenario] = append(byScenario[rec.Scenario], rec)
	}
	for _, name := range order {
		var sc *scenario
		for _, s := range r.scenarios {
			if s.name == name {
				sc = s
			}
		}
		s := summary{Scenario: name}
		if sc != nil {
			s.Title, s.Gateway, s.Target = sc.title, sc.gateway, sc.target
		}
		plain, gw := map[int]record{}, map[int]record{}
		for _, rec := range byScenario[name] {
			if rec.Plain {
				plain[rec.Round] = rec
			} else {
				gw[rec.Round] = rec
				s.Introspection += rec.Introspections
				s.TokensUsed += rec.TokensUsed
			}
			s.Problems += rec.Errors + rec.Unexpected
		}
		var pr, gr, pp50, pp99, gp50, gp99, d99 []float64
		for round, g := range gw {
			p, ok := plain[round]
			if !ok {
				continue
			}
			pr, gr = append(pr, p.RPS), append(gr, g.RPS)
			pp50, pp99, gp50, gp99 = append(pp50, p.P50), append(pp99, p.P99), append(gp50, g.P50), append(gp99, g.P99)
			d99 = append(d99, g.P99-p.P99)
			if p.RPS > 0 {
				s.Ratios = append(s.Ratios, g.RPS/p.RPS)
			}
		}
		// Ratios in round order.
		var rounds []int
		for round := range gw {
			if _, ok := plain[round]; ok {
				rounds = append(rounds, round)
			}
		}
		slices.Sort(rounds)
		s.Ratios = s.Ratios[:0]
		for _, round := range rounds {
			if p := plain[round]; p.RPS > 0 {
				s.Ratios = append(s.Ratios, gw[round].RPS/p.RPS)
			}
		}
		s.PlainRPS, s.GatewayRPS, s.Ratio = median(pr), median(gr), median(s.Ratios)
		s.PlainP50, s.PlainP99, s.GatewayP50, s.GatewayP99, s.DeltaP99 = median(pp50), median(pp99), median(gp50), median(gp99), median(d99)
		var met *bool
		set := func(b bool) { met = &b }
		switch name {
		case "memory-hit":
			set(s.Ratio >= 0.95 && s.DeltaP99 <= 0.3)
		case "list-hit":
			set(s.Ratio >= 0.95)
		case "rotate-1000":
			set(s.Ratio >= 0.93)
		case "redis-hit":
			set(s.Ratio >= 0.85)
		case "half-rejected", "all-rejected":
			set(s.Ratio >= 1.0)
		case "new-token":
			set(s.TokensUsed > 0 && s.Introspection == s.TokensUsed)
		}
		s.Met = met
		r.Summaries = append(r.Summaries, s)
	}
}

func mark(met *bool) string {
	switch {
	case met == nil:
		return ""
	case *met:
		return "yes"
	default:
		return "**no**"
	}
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pce-load results\n\n")
	fmt.Fprintf(&b, "Run %s: `go run ./cmd/pce-load -duration %s -rounds %s -conns %s -slice %s` (warm-up %s per scenario and round; plain Caddy and the gateway driven in turns of %s, %s each).\n\n",
		r.Started.Format(time.RFC3339), r.Options["duration"], r.Options["rounds"], r.Options["conns"], r.Options["slice"], r.Options["warmup"], r.Options["slice"], r.Options["duration"])
	fmt.Fprintf(&b, "Machine: %s CPUs (%s), %s, Linux %s, load average at start %s.\n\n",
		r.Machine["nproc"], r.Machine["cpu"], r.Machine["go"], r.Machine["kernel"], r.Machine["loadavg"])
	fmt.Fprintf(&b, "Medians over the rounds; ratio = gateway req/s ÷ plain Caddy req/s in the same round (median of the per-round ratios); Δp99 = gateway p99 − plain p99 in the same round (median).\n\n")
	fmt.Fprintf(&b, "| scenario | gateway | plain req/s | gateway req/s | ratio | per round | plain p50 / p99 ms | gateway p50 / p99 ms | Δp99 ms | introspections (gateway) | target | met |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|\n")
	for _, s := range r.Summaries {
		var per []string
		for _, x := range s.Ratios {
			per = append(per, fmt.Sprintf("%.2f", x))
		}
		intro := fmt.Sprint(s.Introspection)
		if s.Scenario == "new-token" && s.TokensUsed > 0 {
			intro = fmt.Sprintf("%d for %d tokens (%.3f/token)", s.Introspection, s.TokensUsed, float64(s.Introspection)/float64(s.TokensUsed))
		}
		title := s.Title
		if s.Problems > 0 {
			title += fmt.Sprintf(" (%d errors/unexpected statuses)", s.Problems)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.3f | %s | %.3f / %.3f | %.3f / %.3f | %+.3f | %s | %s | %s |\n",
			title, s.Gateway, s.PlainRPS, s.GatewayRPS, s.Ratio, strings.Join(per, " "),
			s.PlainP50, s.PlainP99, s.GatewayP50, s.GatewayP99, s.DeltaP99, intro, s.Target, mark(s.Met))
	}
	fmt.Fprintf(&b, "\nOne introspection per token (fresh tokens; for each token, every client sends one request at the same moment, and the whole list is sent twice):\n\n")
	fmt.Fprintf(&b, "| gateway | clients | tokens | requests per token | introspections | per token min / max | errors | target | met |\n|---|---:|---:|---:|---:|---|---:|---|---|\n")
	for _, c := range r.Bursts {
		ok := c.Min == 1 && c.Max == 1 && c.Introspections == int64(c.Tokens) && c.Errors == 0 && c.Unexpected == 0
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d / %d | %d | exactly 1 | %s |\n",
			c.Target, c.Clients, c.Tokens, c.RequestsPerToken, c.Introspections, c.Min, c.Max, c.Errors+c.Unexpected, mark(&ok))
	}
	memOK := r.Memory.MiB < 64
	fmt.Fprintf(&b, "\nIn-process tier with %d cached tokens: %.1f MiB of heap (%.0f bytes per token); target < 64 MiB: %s.\n",
		r.Memory.Tokens, r.Memory.MiB, r.Memory.BytesPerToken, mark(&memOK))
	if len(r.RSS) > 0 {
		var parts []string
		for _, x := range r.RSS {
			parts = append(parts, fmt.Sprintf("%s %.1f MiB", x.Target, float64(x.KiB)/1024))
		}
		fmt.Fprintf(&b, "\nCaddy resident memory at the end of the run: %s.\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "\n![req/s per scenario](chart.svg)\n")
	return b.String()
}

func (r *report) write(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(r.svg()), 0o644)
}

// svg draws req/s per scenario, plain Caddy and the gateway side by side,
// with the ratio over each pair.
func (r *report) svg() string {
	const (
		w, h                   = 860, 420
		left, right, top, bott = 70, 20, 50, 90
	)
	n := len(r.Summaries)
	maxV := 1.0
	for _, s := range r.Summaries {
		maxV = max(maxV, s.PlainRPS, s.GatewayRPS)
	}
	// A round axis maximum.
	step := math.Pow(10, math.Floor(math.Log10(maxV)))
	for maxV/step > 8 {
		step *= 2
	}
	axis := math.Ceil(maxV*1.1/step) * step
	plotW, plotH := float64(w-left-right), float64(h-top-bott)
	y := func(v float64) float64 { return float64(top) + plotH - v/axis*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">voipnow_pce vs plain Caddy reverse_proxy: requests/s (median of %s rounds, %s clients)</text>`+"\n",
		left, html.EscapeString(r.Options["rounds"]), html.EscapeString(r.Options["conns"]))
	fmt.Fprintf(&b, `<text x="%d" y="38" fill="#555">%s CPUs %s, %s; ratio = gateway / plain in the same round</text>`+"\n",
		left, html.EscapeString(r.Machine["nproc"]), html.EscapeString(r.Machine["cpu"]), html.EscapeString(r.Machine["go"]))
	for v := 0.0; v <= axis+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">%.0f</text>`+"\n", left-6, y(v)+4, v)
	}
	if n > 0 {
		group := plotW / float64(n)
		bar := group * 0.32
		for i, s := range r.Summaries {
			x0 := float64(left) + group*float64(i) + group*0.16
			for j, v := range []float64{s.PlainRPS, s.GatewayRPS} {
				fill := "#9e9e9e"
				if j == 1 {
					fill = "#1f77b4"
				}
				x := x0 + float64(j)*bar
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.0f req/s</title></rect>`+"\n",
					x, y(v), bar-2, y(0)-y(v), fill, html.EscapeString([]string{"plain", s.Gateway}[j]), v)
			}
			color := "#2a7d2a"
			if s.Met != nil && !*s.Met {
				color = "#c0392b"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="bold" fill="%s">%.3fx</text>`+"\n",
				x0+bar, y(max(s.PlainRPS, s.GatewayRPS))-6, color, s.Ratio)
			label := s.Title
			if label == "" {
				label = s.Scenario
			}
			cx := x0 + bar
			for k, line := range wrap(label, 18) {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", cx, y(0)+16+float64(k)*14, html.EscapeString(line))
			}
		}
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="#9e9e9e"/><text x="%d" y="%d">plain Caddy reverse_proxy</text>`+"\n", left, h-22, left+16, h-12)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="#1f77b4"/><text x="%d" y="%d">voipnow_pce + reverse_proxy</text>`+"\n", left+200, h-22, left+216, h-12)
	b.WriteString("</svg>\n")
	return b.String()
}

// wrap splits s into lines of at most n characters at spaces.
func wrap(s string, n int) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(word) > n {
			lines = append(lines, cur)
			cur = word
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += word
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func machineInfo() map[string]string {
	m := map[string]string{"nproc": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "cpu": "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m["loadavg"] = strings.Join(f[:3], " ")
		}
	}
	return m
}

// upstream answers active for every token, as the introspection client
// would parse it, and counts its calls.
type upstream struct {
	calls atomic.Int64
	exp   int64
}

func (u *upstream) Introspect(context.Context, string) (*introspect.Claims, error) {
	u.calls.Add(1)
	return &introspect.Claims{Active: true, Exp: u.exp, Scopes: []string{"uapi"}, User: "1001"}, nil
}

// measureCache fills an in-process tier with n tokens and returns the heap
// it holds (GC before and after). The tier is sized n + 10% so nothing is
// evicted; its tables are allocated for that size, so this errs high.
func measureCache(n int) memInfo {
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("%043d", i)
	}
	up := &upstream{exp: time.Now().Add(time.Hour).Unix()}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := tokencache.New(tokencache.Config{Namespace: "http://127.0.0.1/oauth/introspect\x00gateway\x00sub", MemoryEntries: n + n/10}, up)
	if err != nil {
		return memInfo{}
	}
	ctx := context.Background()
	for _, t := range tokens {
		_, _ = c.Introspect(ctx, t)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, t := range tokens {
		_, _ = c.Introspect(ctx, t)
	}
	held := n
	if extra := up.calls.Load() - int64(n); extra > 0 {
		held = n - int(extra)
	}
	runtime.KeepAlive(c)
	c.Close()
	mib := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	return memInfo{Tokens: held, MiB: mib, BytesPerToken: mib * (1 << 20) / float64(n)}
}

// replot rewrites results.md and chart.svg in dir from its results.json.
func replot(dir string) error {
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(js, &r); err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	return r.write(dir)
}
