package webhookauth

import (
	"encoding/json"
	"errors"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
