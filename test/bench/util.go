package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// waitPOST waits until a server answers a POST at all (any status).
func waitPOST(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Post(url, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered: %v", url, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
