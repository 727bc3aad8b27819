//go:build !race

package webhookauth

const raceEnabled = false
