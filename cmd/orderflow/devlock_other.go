//go:build !unix

package main

// dataDirLock is a no-op where flock is not available.
type dataDirLock struct{}

func lockDataDir(string) (*dataDirLock, error) { return &dataDirLock{}, nil }

func (*dataDirLock) release() {}
