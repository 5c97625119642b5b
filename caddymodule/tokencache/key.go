package tokencache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// fingerprintLen is the length of the fingerprint the logs show: the first
// hex characters of the key hash.
const fingerprintLen = 12

// keyHasher turns a token into its cache key hash: hex(HMAC-SHA256(secret,
// namespace + "\x00" + token)), or plain SHA-256 without a secret. The
// token itself never leaves this function.
type keyHasher struct {
	prefix []byte // namespace + "\x00"
	pool   sync.Pool
}

// hashState is one pooled hash with its scratch space, so hashing does
// not allocate.
type hashState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
}

func newKeyHasher(namespace string, secret []byte) *keyHasher {
	k := &keyHasher{prefix: append([]byte(namespace), 0)}
	secret = append([]byte(nil), secret...)
	k.pool.New = func() any {
		if len(secret) > 0 {
			return &hashState{h: hmac.New(sha256.New, secret)}
		}
		return &hashState{h: sha256.New()}
	}
	return k
}

// hash returns the 64 lower-case hex characters of the token's key hash.
func (k *keyHasher) hash(token string) string {
	st := k.pool.Get().(*hashState)
	st.h.Reset()
	st.buf = append(append(st.buf[:0], k.prefix...), token...)
	st.h.Write(st.buf)
	clear(st.buf) // the token does not linger in the pool
	st.h.Sum(st.sum[:0])
	hex.Encode(st.hex[:], st.sum[:])
	key := string(st.hex[:])
	if cap(st.buf) <= 4096 {
		k.pool.Put(st)
	}
	return key
}

// ValidFingerprint reports whether s can name a token in Revoke: 12 to 64
// lower-case hex characters, a prefix of a cache key's hash.
func ValidFingerprint(s string) bool {
	return len(s) >= fingerprintLen && len(s) <= 64 && isHex(s)
}

// isHex reports whether s is non-empty lower-case hex.
func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
