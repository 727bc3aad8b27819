package queue

import (
	"testing"
)

// FuzzRedisDecode: what is read back from Redis never panics the
// decoders, and what decodes encodes to something that decodes alike.
func FuzzRedisDecode(f *testing.F) {
	for _, seed := range []string{
		`{"i":"18ed96f03574ebdc0e04a1040004","t":1796258553231123,"p":"github","k":"d","v":"push"}`,
		`{"i":"a","t":-1,"d":9223372036854775807,"a":3,"s":503,"e":"x"}`,
		`{"m":"POST","u":"/q","x":{"A":["1","2"]}}`, `{"m":"GET","u":"/","p":"HTTP/2.0","t":true}`,
		`{}`, `null`, `[]`, ``, `{"t":"x"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var it Item
		if decodeMeta([]byte(raw), &it) == nil {
			enc, err := encodeMeta(&it)
			if err != nil {
				t.Fatal(err)
			}
			var again Item
			if err := decodeMeta(enc, &again); err != nil || again.ID != it.ID || !again.Received.Equal(it.Received) || !again.Due.Equal(it.Due) {
				t.Fatalf("%q: %+v became %+v (%v)", raw, it, again, err)
			}
		}
		if r, err := decodeRequest([]byte(raw)); err == nil {
			enc, err := encodeRequest(r)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeRequest(enc); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
		}
	})
}
