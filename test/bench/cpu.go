package main

import (
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times; 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the user+system CPU time a process has used, or -1.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return -1
	}
	return (utime + stime) / clockTicks
}

// cpuMeter measures the CPU time named processes use between start and stop.
type cpuMeter struct {
	pids  map[string]int
	start map[string]float64
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]float64{}}
	for name, pid := range pids {
		m.start[name] = cpuSeconds(pid)
	}
	return m
}

// stop returns the CPU seconds each process used since newCPUMeter; a
// process that could not be read is left out. Call it before the processes
// exit.
func (m *cpuMeter) stop() map[string]float64 {
	out := map[string]float64{}
	for name, pid := range m.pids {
		end := cpuSeconds(pid)
		if end < 0 || m.start[name] < 0 {
			continue
		}
		out[name] = end - m.start[name]
	}
	return out
}

// infraPIDs are the Kafka broker's and Redis's process ids from test/infra:
// the host pids of their containers, or the plain processes'.
func infraPIDs() (kafka, redis int) {
	v := os.Getenv("ORDERFLOW_TEST_INFRA_SERVER_PIDS")
	if v == "" {
		v = os.Getenv("ORDERFLOW_TEST_INFRA_PIDS")
	}
	f := strings.Fields(strings.Trim(v, `'"`))
	if len(f) >= 2 {
		kafka, _ = strconv.Atoi(f[0])
		redis, _ = strconv.Atoi(f[1])
	}
	return kafka, redis
}
