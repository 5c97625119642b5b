package caddymodule

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The cache URL forms: one node, a Cluster's seeds, Sentinels, TLS, and
// credentials and db from the first URL.
func TestRedisOptions(t *testing.T) {
	o, err := redisOptions([]string{"redis://:pw@10.0.0.5:6380/3"}, "", 80*time.Millisecond, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Addrs) != 1 || o.Addrs[0] != "10.0.0.5:6380" || o.Password != "pw" || o.DB != 3 || o.TLSConfig != nil {
		t.Errorf("single node: %+v", o)
	}
	if o.ReadTimeout != 80*time.Millisecond || o.WriteTimeout != 80*time.Millisecond || o.MaxRetries != -1 {
		t.Errorf("timeouts: read %v write %v retries %d", o.ReadTimeout, o.WriteTimeout, o.MaxRetries)
	}

	o, err = redisOptions([]string{"rediss://user:pw@cache.example.com:6379/0"}, "", time.Second, &tls.Config{}, zap.NewNop())
	if err != nil || o.TLSConfig == nil || o.Dialer == nil || o.Username != "user" {
		t.Errorf("rediss: %+v, %v", o, err)
	}

	o, err = redisOptions([]string{"redis://a:7000", "redis://b:7001", "redis://c:7002"}, "", time.Second, nil, zap.NewNop())
	if err != nil || strings.Join(o.Addrs, ",") != "a:7000,b:7001,c:7002" || o.MasterName != "" {
		t.Errorf("cluster seeds: %+v, %v", o, err)
	}

	o, err = redisOptions([]string{"redis://:pw@s1:26379/1", "redis://s2:26379"}, "mymaster", time.Second, nil, zap.NewNop())
	if err != nil || o.MasterName != "mymaster" || len(o.Addrs) != 2 || o.SentinelPassword != "pw" || o.DB != 1 {
		t.Errorf("sentinel: %+v, %v", o, err)
	}

	_, err = redisOptions([]string{"redis://:secretpw@host:notaport/0"}, "", time.Second, nil, zap.NewNop())
	if err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("a bad URL's error must not show its password: %v", err)
	}
	_, err = redisOptions([]string{"redis://:secretpw@h:1/x"}, "", time.Second, nil, zap.NewNop())
	if err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("a bad URL's error must not show its password: %v", err)
	}
}
