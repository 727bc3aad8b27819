package queue

import (
	"encoding/json"
	"net/http"
	"time"
)

// What a queue on Redis stores per item is kept small: a pending item
// costs its body plus these two short values (BENCHMARKS.md has the
// bytes per item). Keys are one letter; times are Unix microseconds;
// zero values are left out. The item's state is where it is (the
// stream, the delay set, the dead or retained stream) and its size is
// its body's, so neither is stored.

// redisMeta is an Item as stored in Redis.
type redisMeta struct {
	ID         string `json:"i"`
	Received   int64  `json:"t"`
	Due        int64  `json:"d,omitempty"` // when it differs from Received
	Attempts   int    `json:"a,omitempty"`
	LastStatus int    `json:"s,omitempty"`
	LastError  string `json:"e,omitempty"`
	Provider   string `json:"p,omitempty"`
	DeliveryID string `json:"k,omitempty"`
	Event      string `json:"v,omitempty"`
}

func encodeMeta(it *Item) ([]byte, error) {
	m := redisMeta{ID: it.ID, Received: it.Received.UnixMicro(), Attempts: it.Attempts, LastStatus: it.LastStatus,
		LastError: it.LastError, Provider: it.Provider, DeliveryID: it.DeliveryID, Event: it.Event}
	if due := it.Due.UnixMicro(); due != m.Received && !it.Due.IsZero() {
		m.Due = due
	}
	return json.Marshal(&m)
}

// decodeMeta reads an item's metadata; its state and size are the
// caller's to set.
func decodeMeta(raw []byte, it *Item) error {
	var m redisMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	*it = Item{ID: m.ID, Received: time.UnixMicro(m.Received), Due: time.UnixMicro(m.Received), Attempts: m.Attempts,
		LastStatus: m.LastStatus, LastError: m.LastError, Provider: m.Provider, DeliveryID: m.DeliveryID, Event: m.Event}
	if m.Due != 0 {
		it.Due = time.UnixMicro(m.Due)
	}
	return nil
}

// redisRequest is a Request as stored in Redis.
type redisRequest struct {
	Method     string      `json:"m"`
	URI        string      `json:"u"`
	Host       string      `json:"h,omitempty"`
	Proto      string      `json:"p,omitempty"`
	RemoteAddr string      `json:"r,omitempty"`
	TLS        bool        `json:"t,omitempty"`
	Header     http.Header `json:"x,omitempty"`
}

// defaultProto is left out of a stored request: nearly all deliveries
// arrive over it.
const defaultProto = "HTTP/1.1"

func encodeRequest(r *Request) ([]byte, error) {
	rr := redisRequest(*r)
	if rr.Proto == defaultProto {
		rr.Proto = ""
	}
	return json.Marshal(&rr)
}

func decodeRequest(raw []byte) (*Request, error) {
	var r redisRequest
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	out := Request(r)
	if out.Proto == "" {
		out.Proto = defaultProto
	}
	return &out, nil
}
