package main

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/integrations/labelstore"
)

// labelProbeFiles is how many labels the probe writes.
const labelProbeFiles = 200

// labelFileCost measures the CPU (user and system, of the writing thread)
// of one label written by the processors' label store into dir: a 30 KB
// PDF created, written, synced, renamed into place and the folder synced,
// labelProbeFiles in a row. Its files stay, as the processors' do: removing
// them would make the next files created cost more on a file system that
// skips recently freed inodes (see DESIGN.md, "Labels").
func labelFileCost(ctx context.Context, dir string) (time.Duration, error) {
	store, err := labelstore.NewDir(dir)
	if err != nil {
		return 0, err
	}
	defer store.Close()
	pdf := make([]byte, 30<<10)
	copy(pdf, "%PDF-1.4\n")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, err := threadCPU()
	if err != nil {
		return 0, err
	}
	for i := range labelProbeFiles {
		if _, err := store.Put(ctx, fmt.Sprintf("pi_labelprobe%04d", i), "label-1.pdf", pdf); err != nil {
			return 0, err
		}
	}
	end, err := threadCPU()
	if err != nil {
		return 0, err
	}
	return (end - start) / labelProbeFiles, nil
}

// threadCPU is the calling thread's CPU time so far.
func threadCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
