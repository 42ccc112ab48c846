package testenv

import (
	"net"
	"sync"
	"testing"
)

// Silent is a TCP server that accepts connections and reads from them but
// never answers: a broker or Redis that hangs. It stops with the test.
type Silent struct {
	// Addr is its host:port.
	Addr string
	// Received is closed when the first byte arrives.
	Received <-chan struct{}
}

// NewSilent starts a Silent server on loopback.
func NewSilent(t testing.TB) *Silent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					once.Do(func() { close(got) })
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return &Silent{Addr: ln.Addr().String(), Received: got}
}
