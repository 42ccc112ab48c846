//go:build race

package deploy_test

func init() { raceEnabled = true }
