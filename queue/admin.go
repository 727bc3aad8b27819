package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// Admin is the queues' operator API on Caddy's admin endpoint
// (admin.api.webhook_queues), which `caddy webhook queue` calls:
//
//	GET    /webhook/queues                         every queue's counts
//	GET    /webhook/queues/<name>                  one queue's
//	POST   /webhook/queues/<name>/pause            stop delivering (accepting goes on)
//	POST   /webhook/queues/<name>/resume
//	GET    /webhook/queues/<name>/items?state=pending|dead|retained&after=<id>&limit=<n>
//	POST   /webhook/queues/<name>/items/<id>/retry make a dead or retained item pending
//	DELETE /webhook/queues/<name>/items/<id>       drop an item
//	POST   /webhook/queues/<name>/redrive          make every dead item pending
//
// Listings carry metadata only: never a body or a header value.
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_queues",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes implements caddy.AdminRouter.
func (a Admin) Routes() []caddy.AdminRoute {
	h := caddy.AdminHandlerFunc(a.serve)
	return []caddy.AdminRoute{{Pattern: "/webhook/queues", Handler: h}, {Pattern: "/webhook/queues/", Handler: h}}
}

// QueueInfo is a queue's line in the listing.
type QueueInfo struct {
	Name          string  `json:"name"`
	Pending       int64   `json:"pending"`
	InFlight      int64   `json:"in_flight"`
	Dead          int64   `json:"dead"`
	Retained      int64   `json:"retained"`
	Bytes         int64   `json:"bytes"`
	OldestPending float64 `json:"oldest_pending_seconds"`
	Paused        bool    `json:"paused"`
}

func info(rt *runtime) (QueueInfo, error) {
	st, err := rt.store.Stats()
	if err != nil {
		return QueueInfo{}, err
	}
	inflight, paused := rt.inFlight(), rt.paused.Load()
	if rt.shared {
		// The fleet's queue, as every server sees it.
		inflight, paused = st.InFlight, st.Paused
	}
	return QueueInfo{Name: rt.name, Pending: st.Pending - inflight, InFlight: inflight, Dead: st.Dead, Retained: st.Retained,
		Bytes: st.Bytes, OldestPending: age(st, rt.now()).Seconds(), Paused: paused}, nil
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func (Admin) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/webhook/queues"), "/")
	if rest == "" {
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		}
		out := []QueueInfo{}
		for _, rt := range runtimes() {
			qi, err := info(rt)
			if err != nil {
				return apiError(http.StatusServiceUnavailable, "queue %s: %v", rt.name, err)
			}
			out = append(out, qi)
		}
		return writeJSON(w, out)
	}
	parts := strings.Split(rest, "/")
	rt := lookup(parts[0])
	if rt == nil {
		return apiError(http.StatusNotFound, "no queue named %q", parts[0])
	}
	route := strings.Join(parts[1:], "/")
	switch {
	case route == "" && r.Method == http.MethodGet:
		qi, err := info(rt)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "%v", err)
		}
		return writeJSON(w, qi)
	case (route == "pause" || route == "resume") && r.Method == http.MethodPost:
		if err := rt.pause(route == "pause"); err != nil {
			return apiError(http.StatusServiceUnavailable, "%v", err)
		}
		qi, _ := info(rt)
		return writeJSON(w, qi)
	case route == "redrive" && r.Method == http.MethodPost:
		n, err := rt.store.Redrive(rt.now())
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "%v", err)
		}
		rt.notify()
		return writeJSON(w, map[string]int{"redriven": n})
	case route == "items" && r.Method == http.MethodGet:
		q := r.URL.Query()
		state := State(q.Get("state"))
		switch state {
		case "", StatePending, StateDead, StateRetained:
		default:
			return apiError(http.StatusBadRequest, "state %q: want pending, dead or retained", state)
		}
		limit := 100
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return apiError(http.StatusBadRequest, "limit %q: want 1 to 10000", v)
			}
			limit = n
		}
		items, err := rt.store.List(state, q.Get("after"), limit)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "%v", err)
		}
		if items == nil {
			items = []Item{}
		}
		return writeJSON(w, items)
	case len(parts) == 4 && parts[1] == "items" && parts[3] == "retry" && r.Method == http.MethodPost:
		return itemOp(w, rt, parts[2], func(id string) error { return rt.store.Retry(id, rt.now()) })
	case len(parts) == 3 && parts[1] == "items" && r.Method == http.MethodDelete:
		return itemOp(w, rt, parts[2], rt.store.Drop)
	}
	return apiError(http.StatusNotFound, "no such operation: %s %s", r.Method, r.URL.Path)
}

func itemOp(w http.ResponseWriter, rt *runtime, id string, op func(string) error) error {
	if !validID(id) {
		return apiError(http.StatusBadRequest, "%q is not a queue item id", id)
	}
	if rt.isLeased(id) {
		return apiError(http.StatusConflict, "item %s is being delivered right now; try again in a moment", id)
	}
	switch err := op(id); {
	case errors.Is(err, ErrNotFound):
		return apiError(http.StatusNotFound, "no item %s in queue %s", id, rt.name)
	case errors.Is(err, ErrWrongState):
		return apiError(http.StatusConflict, "item %s: %v", id, err)
	case err != nil:
		return apiError(http.StatusServiceUnavailable, "%v", err)
	}
	rt.notify()
	return writeJSON(w, map[string]string{"id": id, "status": "ok"})
}

var _ caddy.AdminRouter = Admin{}
