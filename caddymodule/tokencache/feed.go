package tokencache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// The revocation record is a Redis Stream every instance reads from the
// last entry it has seen: a revocation published while an instance was
// cut off, hung or following a failover is applied when it reads again,
// instead of being lost as a pub/sub message would be. Beside it an epoch
// key (a random value made once) tells an instance that the record itself
// was lost (Redis restarted empty): then, and only then, it empties its
// in-process tier.
const (
	// DefaultHeartbeat is how long one blocking read of the record waits
	// for an entry: an instance hears the record (or notices that it
	// cannot) at least this often.
	DefaultHeartbeat = 500 * time.Millisecond
	// DefaultRevocationGrace bounds how long in-process answers are
	// trusted after the record was last heard.
	DefaultRevocationGrace = 10 * time.Second
	// recordRetention is how long the record keeps an entry. An instance
	// cut off for longer cannot catch up and empties its in-process tier.
	recordRetention = time.Hour
	// replicaWait bounds the WAIT for min_replicas.
	replicaWait = time.Second
	// feedBatch is the most entries one read takes.
	feedBatch = 512
	// reattachRewind is how far back a reader reads again when it
	// attaches after a gap: more than a failover takes.
	reattachRewind = 30 * time.Second
	// recentEntries is how many of the last entries read an instance
	// keeps, to record them again if a failover drops them.
	recentEntries = 4096
)

// recordKey is the Stream; epochKey its epoch. The hash tag puts both in
// one Cluster slot, so a node restarted empty loses both.
func (r *redisTier) recordKey() string { return r.prefix + "{revocations}" }
func (r *redisTier) epochKey() string  { return r.prefix + "{revocations}:epoch" }

// revoke deletes a revoked token's Redis entries (every match of a
// prefix) and appends the revocation to the record, the DEL of a full key
// hash and the record in one round trip. With minReplicas, it then waits
// until that many replicas acknowledged the writes. It returns the number
// of entries deleted.
func (r *redisTier) revoke(ctx context.Context, target string, minReplicas int) (int, string, error) {
	deleted := 0
	if len(target) != 64 {
		n, err := r.deleteMatching(ctx, target, minReplicas)
		if err != nil {
			return n, "", fmt.Errorf("delete from Redis: %w", err)
		}
		deleted = n
	}
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	add := &redis.XAddArgs{
		Stream: r.recordKey(),
		MinID:  strconv.FormatInt(r.now().Add(-recordRetention).UnixMilli(), 10),
		Approx: true,
		Values: []string{"t", target},
	}
	var del *redis.IntCmd
	var id *redis.StringCmd
	cc, cluster := r.rdb.(*redis.ClusterClient)
	if !cluster {
		// One connection: WAIT counts from its last write, which follows
		// every DEL before it (the replication offset is the server's).
		err := onConn(ctx, r.rdb, minReplicas, func(pipe redis.Pipeliner) {
			if len(target) == 64 {
				del = pipe.Del(ctx, r.key(target))
			}
			id = pipe.XAdd(ctx, add)
		})
		if del != nil {
			deleted = int(del.Val())
		}
		if err != nil {
			return deleted, "", fmt.Errorf("record: %w", err)
		}
		return deleted, id.Val(), nil
	}
	// A Cluster: the entry and the record may live on two masters, each
	// waited for on its own connection.
	if len(target) == 64 {
		node, err := cc.MasterForKey(ctx, r.key(target))
		if err == nil {
			err = onConn(ctx, node, minReplicas, func(pipe redis.Pipeliner) { del = pipe.Del(ctx, r.key(target)) })
		}
		if del != nil {
			deleted = int(del.Val())
		}
		if err != nil {
			return deleted, "", fmt.Errorf("delete from Redis: %w", err)
		}
	}
	node, err := cc.MasterForKey(ctx, r.recordKey())
	if err == nil {
		err = onConn(ctx, node, minReplicas, func(pipe redis.Pipeliner) { id = pipe.XAdd(ctx, add) })
	}
	if err != nil {
		return deleted, "", fmt.Errorf("record: %w", err)
	}
	return deleted, id.Val(), nil
}

// onConn runs the writes of fill in one round trip on one connection of
// rdb (a single node, a Sentinel-managed master or one Cluster node) and
// then, when minReplicas is positive, WAITs on that connection until that
// many replicas acknowledged them. WAIT gets its own read deadline: a
// pipeline's is the client's short read timeout.
func onConn(ctx context.Context, rdb redis.UniversalClient, minReplicas int, fill func(redis.Pipeliner)) error {
	client, ok := rdb.(*redis.Client)
	if !ok {
		if minReplicas > 0 {
			return fmt.Errorf("min_replicas needs a single node or Sentinel client, not %T", rdb)
		}
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
		return err
	}
	conn := client.Conn()
	defer conn.Close()
	if _, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil }); err != nil {
		return err
	}
	if minReplicas <= 0 {
		return nil
	}
	n, err := conn.Wait(ctx, minReplicas, replicaWait).Result()
	if err != nil {
		return err
	}
	if n < int64(minReplicas) {
		return fmt.Errorf("%d of the %d replicas required (min_replicas) acknowledged within %s", n, minReplicas, replicaWait)
	}
	return nil
}

// feedState is what the record's reader knows between reads.
type feedState struct {
	pos   string    // the last entry seen; "" before the first attach
	epoch string    // the record's epoch as last seen
	heard time.Time // the last successful read
	down  bool      // reported not heard (log and metrics)
	// sawRecord: the record existed when last looked at (an entry in it):
	// finding none afterwards means it was deleted or evicted.
	sawRecord bool
}

// remember keeps e among the recent entries: the ones a failover to a
// replica that had not got them drops are recorded again from there.
// The reader adds what it reads; Revoke what it recorded (its reader may
// already be on the new master when its write went to the old one).
func (c *Cache) remember(e feedEntry) {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	if len(c.recent) == recentEntries {
		copy(c.recent, c.recent[1:])
		c.recent = c.recent[:recentEntries-1]
	}
	c.recent = append(c.recent, e)
}

// recentCopy is a copy of the recent entries (tests).
func (c *Cache) recentCopy() []feedEntry {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	return append([]feedEntry(nil), c.recent...)
}

// runFeed reads the record until ctx ends or Close: each entry drops the
// revoked token's in-process entries (and, for a full hash, its Redis
// entry, in case a flight stored it after the revoking instance deleted
// it). Every successful read, entries or none, counts as hearing the
// record; an instance that has not heard it for revocationGrace stops
// trusting its in-process answers (see trusted).
func (c *Cache) runFeed(ctx context.Context) {
	var st feedState
	defer func() {
		if st.down {
			c.obs.Feed(true) // this cache is gone: it no longer counts as deaf
		}
	}()
	attached := false
	backoff := 50 * time.Millisecond
	sleep := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, c.heartbeat)
		select {
		case <-ctx.Done():
			return false
		case <-c.done:
			return false
		case <-t.C:
			return true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		default:
		}
		if !attached {
			if err := c.attach(ctx, &st); err != nil {
				c.feedDown(&st, err)
				if !sleep() {
					return
				}
				continue
			}
			// Heard only once a read has returned, with the rewound
			// entries applied: until then nothing is trusted anew.
			attached = true
		}
		entries, err := c.readFeed(ctx, st.pos)
		if err == nil {
			err = c.checkEpoch(ctx, &st)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			attached = false
			c.feedDown(&st, err)
			if !sleep() {
				return
			}
			continue
		}
		backoff = 50 * time.Millisecond
		if len(entries) > 0 {
			st.sawRecord = true
		}
		for _, e := range entries {
			st.pos = e.id
			c.remember(e)
			c.applyRevocation(ctx, e.target)
		}
		c.markHeard(&st)
		c.recordUnrecorded(ctx)
		if err := c.verifyOwn(ctx, entries); err != nil {
			attached = false
			c.feedDown(&st, err)
		}
	}
}

// markHeard records a successful read.
func (c *Cache) markHeard(st *feedState) {
	st.heard = time.Now()
	c.heard.Store(c.now().UnixNano())
	select {
	case <-c.feedReady:
	default:
		close(c.feedReady)
	}
	if st.down {
		st.down = false
		c.obs.Feed(true)
		c.log.Info("revocation record heard again")
		// Redis answers again: the lookups may use it at once rather than
		// after the breaker's cool-down, so that the answers refetched
		// after an emptying are shared between instances, not fetched by
		// each.
		c.redis.br.success()
	}
}

// feedDown reports a failed read.
func (c *Cache) feedDown(st *feedState, err error) {
	if !st.down {
		st.down = true
		c.obs.Feed(false)
		c.log.Warn("revocation record not heard; in-process answers are trusted for revocation_grace after it was last heard, then checked again",
			zap.Duration("revocation_grace", c.grace), zap.Error(err))
	}
	c.redis.obs.RedisError("feed")
}

// attach positions the reader: on its first attach at the record's end;
// after a gap where it was, unless the record was lost or the gap outlived
// it, in which case the in-process tier is emptied.
func (c *Cache) attach(ctx context.Context, st *feedState) error {
	epoch, err := c.redis.loadEpoch(ctx)
	if err != nil {
		return err
	}
	lost := ""
	switch {
	case st.epoch != "" && epoch != st.epoch:
		lost = "the revocation record was lost (Redis restarted empty, or was replaced)"
	case !st.heard.IsZero() && time.Since(st.heard) > recordRetention-time.Minute:
		lost = "this instance was cut off for longer than the revocation record keeps entries"
	}
	st.epoch = epoch
	last, err := c.redis.lastEntry(ctx)
	if err != nil {
		return err
	}
	if lost == "" && last == "0-0" && st.sawRecord {
		// Trimming always keeps the newest entry: a record that had
		// entries and has none was deleted or evicted (an allkeys-*
		// maxmemory policy), with the epoch spared.
		lost = "the revocation record is gone (deleted, or evicted by Redis' maxmemory policy)"
	}
	reattach := lost == "" && st.pos != ""
	if lost != "" {
		st.sawRecord = false
	}
	st.sawRecord = st.sawRecord || last != "0-0"
	first := st.pos == ""
	if lost == "" && first && time.Since(c.startedAt) > recordRetention-time.Minute {
		lost = "this instance could not read the revocation record for longer than it keeps entries since it started"
	}
	if lost != "" || compareIDs(last, st.pos) < 0 {
		// A lost record, or one behind what we saw (a failover to a
		// replica that had not got the last entries): go on from its end.
		st.pos = last
	}
	if first && lost == "" {
		// The cache may have answered (and stored answers) before its
		// first attach, Redis unreachable at start: read every entry
		// made since it started, and a margin.
		st.pos = rewind(strconv.FormatInt(c.startedAt.UnixMilli(), 10)+"-0", reattachRewind)
	}
	if reattach {
		if err := c.repairTail(ctx); err != nil {
			return err
		}
		// During a failover two masters may take entries at once, and
		// their ids interleave: one the new master took while this
		// reader was still on the old one can be older than its
		// position. Read the last stretch again (applying an entry twice
		// costs at most one more introspection).
		st.pos = rewind(st.pos, reattachRewind)
	}
	if lost != "" {
		c.recentMu.Lock()
		c.recent = c.recent[:0]
		c.recentMu.Unlock()
	}
	if lost != "" {
		c.revs.clearAll()
		n := 0
		if c.mem != nil {
			n = c.mem.clear()
		}
		c.log.Warn(lost+"; emptied the in-process cache, since revocations may have been missed", zap.Int("entries", n))
	}
	return nil
}

// repairTail records again the recent entries that the record no longer
// holds: after a failover to a replica that had not got them, the
// instance that made them may have been told 200 (a replica that was not
// promoted acknowledged them). Their Redis entries are deleted again too.
// Entries older than half the retention are left to the trimming.
func (c *Cache) repairTail(ctx context.Context) error {
	c.recentMu.Lock()
	recent := append([]feedEntry(nil), c.recent...)
	c.recentMu.Unlock()
	cutoff := uint64(time.Now().Add(-recordRetention / 2).UnixMilli())
	first := ""
	for _, e := range recent {
		if ms, _ := splitID(e.id); ms >= cutoff && (first == "" || compareIDs(e.id, first) < 0) {
			first = e.id
		}
	}
	if first == "" {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	msgs, err := c.redis.rdb.XRangeN(rctx, c.redis.recordKey(), first, "+", 100_000).Result()
	cancel()
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		present[m.ID] = true
	}
	n := 0
	done := map[string]bool{}
	for _, e := range recent {
		if ms, _ := splitID(e.id); ms < cutoff || present[e.id] || done[e.id] {
			continue
		}
		done[e.id] = true
		if _, _, err := c.redis.revoke(ctx, e.target, 0); err != nil {
			return err
		}
		n++
	}
	if n > 0 {
		c.log.Warn("the revocation record lost entries this instance had made or read (a failover to a replica that had not got them); recorded them again",
			zap.Int("entries", n))
	}
	return nil
}

// verifyOwn checks the entries this instance's Revoke recorded: one the
// reader has read is there; one still unread a heartbeat later is looked
// for in the record, and recorded again if it is not there (its write went
// to a master that lost it in a failover, after this reader had moved to
// the new one).
func (c *Cache) verifyOwn(ctx context.Context, read []feedEntry) error {
	c.recentMu.Lock()
	if len(c.own) == 0 {
		c.recentMu.Unlock()
		return nil
	}
	seen := make(map[string]bool, len(read))
	for _, e := range read {
		seen[e.id] = true
	}
	old := uint64(time.Now().Add(-c.heartbeat).UnixMilli())
	var check, keep []feedEntry
	for _, e := range c.own {
		switch ms, _ := splitID(e.id); {
		case seen[e.id]:
		case ms <= old:
			check = append(check, e)
		default:
			keep = append(keep, e)
		}
	}
	c.own = keep
	c.recentMu.Unlock()
	for _, e := range check {
		rctx, cancel := context.WithTimeout(ctx, revokeTimeout)
		msgs, err := c.redis.rdb.XRange(rctx, c.redis.recordKey(), e.id, e.id).Result()
		cancel()
		if err == nil && len(msgs) == 0 {
			var id string
			if _, id, err = c.redis.revoke(ctx, e.target, 0); err == nil {
				c.log.Warn("a revocation this instance recorded is no longer in the record (a failover to a replica that had not got it); recorded it again")
				c.addOwn(feedEntry{id: id, target: e.target})
			}
		}
		if err != nil {
			c.addOwn(e) // looked for again on the next round
			return err
		}
	}
	return nil
}

// TakeUnrecorded returns, and forgets, the revocations this cache could
// not record yet (a cache going away hands them to its successor).
func (c *Cache) TakeUnrecorded() []string {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	q := c.unrecorded
	c.unrecorded = nil
	return q
}

// Requeue adds revocations another cache of the same keys and Redis could
// not record: this one records them when it hears Redis.
func (c *Cache) Requeue(targets []string) {
	for _, t := range targets {
		c.queueUnrecorded(t)
	}
}

// queueUnrecorded keeps a revocation Revoke could not record.
func (c *Cache) queueUnrecorded(target string) {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	if c.started.Load() && len(c.unrecorded) < recentEntries {
		c.unrecorded = append(c.unrecorded, target)
	}
}

// recordUnrecorded records the revocations that were answered with an
// error (Redis hung or down), now that the reader hears it: the other
// instances apply them within a second of Redis coming back, whether or
// not the operator retries.
func (c *Cache) recordUnrecorded(ctx context.Context) {
	c.recentMu.Lock()
	queue := c.unrecorded
	c.unrecorded = nil
	c.recentMu.Unlock()
	done := 0
	for i, target := range queue {
		_, id, err := c.redis.revoke(ctx, target, c.cfg.MinReplicas)
		if err != nil {
			c.recentMu.Lock()
			c.unrecorded = append(queue[i:], c.unrecorded...)
			c.recentMu.Unlock()
			break
		}
		c.revs.add(target)
		c.dropLocal(target)
		c.remember(feedEntry{id: id, target: target})
		c.addOwn(feedEntry{id: id, target: target})
		done++
	}
	if done > 0 {
		c.log.Info("recorded revocations that had been answered with an error while Redis could not be reached",
			zap.Int("revocations", done))
	}
}

// addOwn notes an entry Revoke recorded, until the reader sees it.
func (c *Cache) addOwn(e feedEntry) {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	if len(c.own) < recentEntries {
		c.own = append(c.own, e)
	}
}

// checkEpoch notices a record lost under a connection that stayed up (a
// FLUSHALL): the epoch is read on every round.
func (c *Cache) checkEpoch(ctx context.Context, st *feedState) error {
	ctx, cancel := context.WithTimeout(ctx, c.heartbeat)
	defer cancel()
	// One round trip; both keys are in one slot.
	pipe := c.redis.rdb.Pipeline()
	get := pipe.Get(ctx, c.redis.epochKey())
	exists := pipe.Exists(ctx, c.redis.recordKey())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if get.Val() != st.epoch {
		return errors.New("the revocation record's epoch changed")
	}
	if exists.Val() == 0 && st.sawRecord {
		return errors.New("the revocation record is gone")
	}
	return nil
}

// loadEpoch returns the record's epoch, making a new one when there is
// none: never the one an instance remembers, so that every instance that
// knew the old one notices the loss.
func (r *redisTier) loadEpoch(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	if err := r.rdb.SetNX(ctx, r.epochKey(), randomOwner(), 0).Err(); err != nil {
		return "", err
	}
	return r.rdb.Get(ctx, r.epochKey()).Result()
}

// lastEntry is the id of the record's last entry, "0-0" when it is empty.
func (r *redisTier) lastEntry(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	msgs, err := r.rdb.XRevRangeN(ctx, r.recordKey(), "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// feedEntry is one revocation read from the record.
type feedEntry struct{ id, target string }

// readFeed waits up to the heartbeat for entries after pos.
func (c *Cache) readFeed(ctx context.Context, pos string) ([]feedEntry, error) {
	// The read blocks for the heartbeat; a Redis that does not answer
	// within it and a little more is hung.
	ctx, cancel := context.WithTimeout(ctx, c.heartbeat+max(500*time.Millisecond, 4*c.cfg.RedisTimeout))
	defer cancel()
	res, err := c.redis.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{c.redis.recordKey(), pos},
		Count:   feedBatch,
		Block:   c.heartbeat,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []feedEntry
	for _, s := range res {
		for _, m := range s.Messages {
			t, _ := m.Values["t"].(string)
			out = append(out, feedEntry{id: m.ID, target: t})
		}
	}
	return out, nil
}

// applyRevocation drops a revoked token's in-process entries. A flight
// that was storing its answer when the revoking instance deleted the Redis
// entry may have put it back: for a full hash the Redis entry is deleted
// again (a prefix only when this instance held a match).
func (c *Cache) applyRevocation(ctx context.Context, target string) {
	if !ValidFingerprint(target) {
		return
	}
	c.revs.add(target)
	n := c.dropLocal(target)
	if len(target) != 64 && n == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	if _, err := c.redis.deleteMatching(dctx, target, 0); err != nil {
		c.redis.fail("del", err)
	}
}

// trusted reports whether an in-process entry may answer at now: without
// Redis always (revocations are local); with it, while the record was
// heard, or the entry checked, within the grace.
func (c *Cache) trusted(e *entry, now int64) bool {
	if c.redis == nil {
		return true
	}
	return now-max(c.heard.Load(), e.checked) <= int64(c.grace)
}

// rewind is the id d before id (its milliseconds less d).
func rewind(id string, d time.Duration) string {
	ms, _ := splitID(id)
	back := uint64(d.Milliseconds())
	if ms <= back {
		return "0-0"
	}
	return strconv.FormatUint(ms-back, 10) + "-0"
}

// compareIDs orders two stream ids ("ms-seq").
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
