package gate

import (
	"context"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// verdictVar is the request variable that carries webhook_auth's refusal
// to the limiters in front of it.
const verdictVar = "webhook_auth.refused"

// SetRefused records that webhook_auth refused the request (in enforce
// mode) for reason. A `count rejected` limiter in front reads it back
// after the handlers behind it have answered.
func SetRefused(ctx context.Context, reason Reason) {
	v, ok := boxedReasons[reason]
	if !ok {
		v = reason
	}
	caddyhttp.SetVar(ctx, verdictVar, v)
}

// boxedReasons holds each reason as an interface value made once, so a
// flood of refusals does not allocate one per request.
var boxedReasons = func() map[Reason]any {
	m := make(map[Reason]any, len(reasonValues))
	for r := range reasonValues {
		m[r] = r
	}
	return m
}()

// Refused returns the reason webhook_auth refused the request for, if it
// did. Report mode refuses nothing, so it records nothing.
func Refused(ctx context.Context) (Reason, bool) {
	r, ok := caddyhttp.GetVar(ctx, verdictVar).(Reason)
	return r, ok
}
