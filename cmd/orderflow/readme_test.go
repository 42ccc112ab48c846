package main

import (
	"os"
	"strings"
	"testing"
)

// README's `make run` shows the lines make prints: the build recipe of the
// Makefile, then the dev command.
func TestReadmeMakeRunMatchesMakefile(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var build string
	lines := strings.Split(string(makefile), "\n")
	for i, l := range lines {
		if l == "build:" && i+1 < len(lines) {
			build = strings.ReplaceAll(strings.TrimPrefix(lines[i+1], "\t"), "$(GO)", "go")
		}
	}
	if want := "CGO_ENABLED=0 go build -trimpath -buildvcs=auto -o bin/orderflow ./cmd/orderflow"; build != want {
		t.Fatalf("Makefile build recipe %q, want %q (update this test and README together)", build, want)
	}
	block := "$ make run\n" + build + "\n./bin/orderflow dev\n"
	if !strings.Contains(string(readme), block) {
		t.Errorf("README's make run does not start with what make prints:\n%s", block)
	}
}
