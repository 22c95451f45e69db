package template

import (
	"encoding/base32"
	"encoding/binary"
	"math/bits"
	"strings"
)

// UniqueString is ARM's uniqueString(): the arguments joined with "-",
// hashed with a 64-bit variant of MurmurHash3 (two 32-bit lanes), and the
// hash's eight bytes, most significant first, base32-encoded in lower case
// without padding: 13 characters.
//
// The algorithm is not published by Microsoft; this one reproduces the
// values Azure returns (see the tests), for example
// uniqueString('hello', 'world') = 'a7wkljktk6wne'.
func UniqueString(parts ...string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], murmur64([]byte(strings.Join(parts, "-"))))
	return uniqueEncoding.EncodeToString(b[:])
}

var uniqueEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// murmur64 is the 64-bit hash behind UniqueString, with seed 0.
func murmur64(data []byte) uint64 {
	const c1, c2 = 0x239b961b, 0xab0e9789
	var h1, h2 uint32
	n := len(data)
	i := 0
	for ; i+8 <= n; i += 8 {
		k1 := binary.LittleEndian.Uint32(data[i:])
		k2 := binary.LittleEndian.Uint32(data[i+4:])
		h1 ^= bits.RotateLeft32(k1*c1, 15) * c2
		h1 = (bits.RotateLeft32(h1, 19)+h2)*5 + 0x561ccd1b
		h2 ^= bits.RotateLeft32(k2*c2, 17) * c1
		h2 = (bits.RotateLeft32(h2, 13)+h1)*5 + 0x0bcaa747
	}
	if rest := data[i:]; len(rest) > 0 {
		var k1, k2 uint32
		for j := min(len(rest), 4) - 1; j >= 0; j-- {
			k1 = k1<<8 | uint32(rest[j])
		}
		h1 ^= bits.RotateLeft32(k1*c1, 15) * c2
		if len(rest) > 4 {
			for j := len(rest) - 1; j >= 4; j-- {
				k2 = k2<<8 | uint32(rest[j])
			}
			h2 ^= bits.RotateLeft32(k2*c2, 17) * c1
		}
	}
	h1 ^= uint32(n)
	h2 ^= uint32(n)
	h1 += h2
	h2 += h1
	h1, h2 = fmix32(h1), fmix32(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}

func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
