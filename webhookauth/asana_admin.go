package webhookauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AsanaAdmin{})
}

// AsanaAdmin is the operator's side of Asana's enrollment on Caddy's
// admin endpoint (admin.api.webhook_asana), which `caddy webhook asana`
// calls:
//
//	POST   /webhook/asana/arm?ttl=10m     a one-time enrollment token
//	GET    /webhook/asana/enrolled        the enrolled webhooks (never their secrets)
//	DELETE /webhook/asana/enrolled/<id>   forget one
//
// Arming is what lets a handshake set a secret, so it lives where
// `caddy reload` does: on the admin endpoint, with its access controls.
type AsanaAdmin struct{}

// CaddyModule returns the Caddy module information.
func (AsanaAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_asana",
		New: func() caddy.Module { return new(AsanaAdmin) },
	}
}

// Routes implements caddy.AdminRouter.
func (a AsanaAdmin) Routes() []caddy.AdminRoute {
	h := caddy.AdminHandlerFunc(a.serve)
	return []caddy.AdminRoute{{Pattern: "/webhook/asana/", Handler: h}}
}

func asanaAPIError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func (AsanaAdmin) serve(w http.ResponseWriter, r *http.Request) error {
	s := currentAsanaStorage()
	if s == nil {
		return asanaAPIError(http.StatusNotFound, "no webhook_auth asana handler is configured")
	}
	route := strings.Trim(strings.TrimPrefix(r.URL.Path, "/webhook/asana"), "/")
	var out any
	switch {
	case route == "arm" && r.Method == http.MethodPost:
		ttl := DefaultArmTTL
		if v := r.URL.Query().Get("ttl"); v != "" {
			d, err := caddy.ParseDuration(v)
			if err != nil || d <= 0 || d > MaxArmTTL {
				return asanaAPIError(http.StatusBadRequest, "ttl %q: want a duration up to %s", v, MaxArmTTL)
			}
			ttl = d
		}
		tok, err := Arm(r.Context(), s, ttl, time.Now())
		if err != nil {
			return asanaAPIError(http.StatusServiceUnavailable, "storing the token: %v", err)
		}
		out = tok
	case route == "enrolled" && r.Method == http.MethodGet:
		list, err := ListEnrollments(r.Context(), s)
		if err != nil {
			return asanaAPIError(http.StatusServiceUnavailable, "%v", err)
		}
		out = list
	case strings.HasPrefix(route, "enrolled/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(route, "enrolled/")
		ok, err := ForgetEnrollment(r.Context(), s, id)
		if err != nil {
			return asanaAPIError(http.StatusServiceUnavailable, "%v", err)
		}
		if !ok {
			return asanaAPIError(http.StatusNotFound, "no enrollment %q", id)
		}
		out = map[string]string{"forgotten": id}
	default:
		return asanaAPIError(http.StatusNotFound, "%s %s: want POST arm, GET enrolled or DELETE enrolled/<id>", r.Method, r.URL.Path)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(out)
}

var _ caddy.AdminRouter = AsanaAdmin{}
