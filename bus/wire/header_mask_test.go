package wire

import (
	"math/rand/v2"
	"testing"
)

// TestHeaderRulesEveryBit flips every bit of the header, one and two at a
// time, on top of each op byte (all 256, so ops of 16 and more whose low
// bits alias a known op are covered) and a few bases, and requires the fast
// decoder to agree with check.
func TestHeaderRulesEveryBit(t *testing.T) {
	lims := []Limits{
		{MaxPayload: 1000, MaxHeaders: 100, MaxFDs: 4},
		{MaxPayload: ^uint32(0), MaxHeaders: ^uint32(0), MaxFDs: 255},
		{},
	}
	bases := [][]byte{
		headerBytes(Version, 0, 0, 0, 0, 0, 0, 0, 0),
		headerBytes(Version, 0, 0, 0, 0, 0, 0, 0, 1),
		headerBytes(Version, 0, 0, 1, 3, 2, 10, 20, 1),
		headerBytes(Version, 0, PubPayloadFD, 1, 3, 0, 0, PayloadFDLen, 1),
		headerBytes(Version, 0, PubPayloadFD, 0, 3, 0, 0, PayloadFDLen, 1),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for op := range 256 {
		for _, base := range bases {
			b := append([]byte(nil), base...)
			b[1] = byte(op)
			for li := range lims {
				lim := &lims[li]
				sameAsChecked(t, b, lim)
				for i := range HeaderLen * 8 {
					if i/8 == 1 {
						continue // the op byte is the loop variable
					}
					b[i/8] ^= 1 << (i % 8)
					sameAsChecked(t, b, lim)
					j := rng.IntN(HeaderLen * 8)
					if j/8 != 1 {
						b[j/8] ^= 1 << (j % 8)
						sameAsChecked(t, b, lim)
						b[j/8] ^= 1 << (j % 8)
					}
					b[i/8] ^= 1 << (i % 8)
				}
			}
		}
	}
}
