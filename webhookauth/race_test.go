//go:build race

package webhookauth

const raceEnabled = true
