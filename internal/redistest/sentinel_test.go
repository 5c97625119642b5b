package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voipnow-pce/caddy-voipnow-pce/internal/resp"
)

func TestSentinelFailoverAndKillMaster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	ss := StartSentinel(t)
	t.Logf("StartSentinel: %s", time.Since(start))
	if got := len(ss.SentinelAddrs()); got != 3 {
		t.Fatalf("%d sentinels, want 3", got)
	}
	first, second := ss.Nodes()[0], ss.Nodes()[1]
	if m := ss.Master(); m != first {
		t.Fatalf("Master = %s at start, want %s", m.Addr(), first.Addr())
	}
	// Replication is asynchronous: a write must be acknowledged by the
	// replica (WAIT, on the connection that wrote it) to survive a
	// failover.
	conn, err := resp.Dial(first.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Do("WAIT", "1", "2000"); err != nil || n != int64(1) {
		t.Fatalf("WAIT after SET k: %v, %v", n, err)
	}

	ctx := context.Background()
	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    ss.MasterName(),
		SentinelAddrs: ss.SentinelAddrs(),
	})
	defer fc.Close()
	if err := fc.Ping(ctx).Err(); err != nil {
		t.Fatalf("go-redis failover client: %v", err)
	}

	start = time.Now()
	m := ss.Failover(t)
	t.Logf("Failover: %s", time.Since(start))
	if m != second || ss.Master() != second {
		t.Fatalf("after Failover the master is %s, want %s", m.Addr(), second.Addr())
	}
	if v, err := second.Do("GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET k on the new master: %v, %v", v, err)
	}
	if _, err := first.Do("SET", "k", "w"); err == nil {
		t.Fatal("the old master accepted a write after Failover: it should be a read-only replica")
	}
	// go-redis follows the switch.
	waitFor(t, 5*time.Second, "go-redis on the new master, k2 acknowledged by a replica", func() error {
		c := fc.Conn()
		defer c.Close()
		if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
			return err
		}
		if n, err := c.Wait(ctx, 1, 2*time.Second).Result(); err != nil || n < 1 {
			return fmt.Errorf("WAIT: %d, %v", n, err)
		}
		return nil
	})

	start = time.Now()
	killed := ss.KillMaster(t)
	t.Logf("KillMaster: %s", time.Since(start))
	if killed != second || ss.Master() != first {
		t.Fatalf("after KillMaster: killed %s, master %s; want killed %s, master %s",
			killed.Addr(), ss.Master().Addr(), second.Addr(), first.Addr())
	}
	if v, err := first.Do("GET", "k2"); err != nil || v != "v2" {
		t.Fatalf("GET k2 on the promoted old master: %v, %v", v, err)
	}
}
