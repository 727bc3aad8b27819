package ratelimit

import (
	"context"
)

// Store holds GCRA state for many keys and decides one event at a time.
// The embedded MemoryStore is the default; the webhook app provides shared
// ones (Redis) by name. A Store must make each decision atomically: two
// concurrent events on one key can never both take the last slot.
type Store interface {
	// Take decides one event for key under limit. The key is already
	// namespaced to the limiter. An error means the store could not
	// decide; the handler then applies its on_store_error policy.
	Take(ctx context.Context, key string, limit Limit) (Decision, error)
	// Peek decides as Take would, but spends nothing: the handler's
	// `count rejected` mode peeks before a request and takes only once
	// the request has turned out to be rejected.
	Peek(ctx context.Context, key string, limit Limit) (Decision, error)
}

// StoreProvider is implemented by the webhook app, which owns the shared
// stores. Handlers find it with ctx.App("webhook").
type StoreProvider interface {
	RateLimitStore(name string) (Store, error)
}
