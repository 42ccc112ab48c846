package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/test/infra"
)

// With --profile the broker is recorded with Java Flight Recorder while
// the gateway's first counted ingest round at 64 connections and this
// build's first drain at 0 ms run, so that its CPU per webhook and per
// order can be put down to what it does (request handling, log appends,
// replication bookkeeping, producer-state checks, GC) rather than
// guessed. The recording is started and stopped with jcmd (the JDK's; it
// attaches to a broker in a container as to a plain process), read with
// jfr, and kept in the profile folder beside the Go profiles.

// BrokerProfile is one recording of the broker, summed up.
type BrokerProfile struct {
	// What ran while it recorded.
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// Samples is the execution samples of threads running Java code and
	// of threads in a native call that is not a wait (a socket write, a
	// file write; NativeSamples of them); Activities and Threads are
	// their shares by what the sampled code does and by thread.
	Samples       int                `json:"samples"`
	NativeSamples int                `json:"native_samples"`
	Activities    map[string]float64 `json:"activities"`
	Threads       map[string]float64 `json:"threads"`
	// GCPauses and GCPauseMs are the collections in the recording and
	// the time they stopped the broker's threads.
	GCPauses  int     `json:"gc_pauses"`
	GCPauseMs float64 `json:"gc_pause_ms"`
	// JVMUser and JVMSystem are the broker's mean user and system CPU
	// over the recording (jdk.CPULoad), in cores: what the samples
	// cannot see (GC and compiler threads, the kernel's side of a call)
	// is in these.
	JVMUser   float64 `json:"jvm_user_cores"`
	JVMSystem float64 `json:"jvm_system_cores"`
	// CPUMicros is the broker's CPU (from /proc, over the recording) per
	// Unit: an accepted webhook or an order.
	CPUMicros float64 `json:"cpu_us_per_unit"`
	Unit      string  `json:"unit"`
	File      string  `json:"file"`
}

// brokerRecording is a recording in progress.
type brokerRecording struct {
	pid   int
	name  string
	path  string // in the broker's file system
	start time.Time
	cpu0  float64
	done  bool
}

// abandon stops a recording that stopBrokerRecording did not (the run
// failed), so that it costs the broker nothing in later runs.
func (r *brokerRecording) abandon() {
	if r != nil && !r.done {
		r.done = true
		_ = exec.Command("jcmd", strconv.Itoa(r.pid), "JFR.stop", "name="+r.name).Run()
	}
}

// startBrokerRecording starts recording the broker when --profile is set;
// nil (with the reason on stderr) when it cannot be.
func (b *bench) startBrokerRecording(name string) *brokerRecording {
	if b.o.profile == "" {
		return nil
	}
	pid, _ := infraPIDs()
	if pid <= 0 {
		fmt.Fprintf(os.Stderr, "bench: broker recording %s: the broker's process id is unknown\n", name)
		return nil
	}
	r := &brokerRecording{pid: pid, name: "orderflow-bench-" + name, path: "/tmp/orderflow-bench-" + name + ".jfr"}
	if out, err := exec.Command("jcmd", strconv.Itoa(pid), "JFR.start", "name="+r.name, "settings=profile").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: broker recording %s: jcmd JFR.start: %v: %s\n", name, err, strings.TrimSpace(string(out)))
		return nil
	}
	r.start, r.cpu0 = time.Now(), cpuSeconds(pid)
	return r
}

// stopBrokerRecording stops r, keeps its file in the profile folder and
// adds its summary to the results; units is how many webhooks or orders
// the broker served meanwhile.
func (b *bench) stopBrokerRecording(r *brokerRecording, label string, units int64, unit string) {
	if r == nil || r.done {
		return
	}
	r.done = true
	secs := time.Since(r.start).Seconds()
	cpu := cpuSeconds(r.pid) - r.cpu0
	if out, err := exec.Command("jcmd", strconv.Itoa(r.pid), "JFR.stop", "name="+r.name, "filename="+r.path).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: broker recording %s: jcmd JFR.stop: %v: %s\n", label, err, strings.TrimSpace(string(out)))
		return
	}
	// The broker wrote the file in its own file system (its container's).
	src := fmt.Sprintf("/proc/%d/root%s", r.pid, r.path)
	dst := filepath.Join(b.o.profile, strings.TrimPrefix(r.name, "orderflow-bench-")+".jfr")
	err := infra.CopyFile(src, dst, 0o644)
	_ = os.Remove(src)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: broker recording %s: %v\n", label, err)
		return
	}
	p, err := summarizeRecording(dst)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: broker recording %s: %v\n", label, err)
		return
	}
	p.Name, p.Seconds, p.Unit, p.File = label, secs, unit, filepath.Base(dst)
	if units > 0 {
		p.CPUMicros = cpu * 1e6 / float64(units)
	}
	b.res.Broker = append(b.res.Broker, p)
}

// jfrEvents is the part of `jfr print --json` read here.
type jfrEvents struct {
	Recording struct {
		Events []struct {
			Type   string `json:"type"`
			Values struct {
				SampledThread struct {
					JavaName string `json:"javaName"`
				} `json:"sampledThread"`
				StackTrace struct {
					Frames []struct {
						Method struct {
							Type struct {
								Name string `json:"name"`
							} `json:"type"`
							Name string `json:"name"`
						} `json:"method"`
					} `json:"frames"`
				} `json:"stackTrace"`
				SumOfPauses json.RawMessage `json:"sumOfPauses"`
				JVMUser     float64         `json:"jvmUser"`
				JVMSystem   float64         `json:"jvmSystem"`
			} `json:"values"`
		} `json:"events"`
	} `json:"recording"`
}

// summarizeRecording reads a recording's execution samples and
// collections with the JDK's jfr tool.
func summarizeRecording(file string) (BrokerProfile, error) {
	out, err := exec.Command("jfr", "print", "--json", "--stack-depth", "96",
		"--events", "jdk.ExecutionSample,jdk.NativeMethodSample,jdk.GarbageCollection,jdk.CPULoad", file).Output()
	if err != nil {
		return BrokerProfile{}, fmt.Errorf("jfr print %s: %w", file, err)
	}
	var ev jfrEvents
	if err := json.Unmarshal(out, &ev); err != nil {
		return BrokerProfile{}, fmt.Errorf("jfr print %s: %w", file, err)
	}
	p := BrokerProfile{Activities: map[string]float64{}, Threads: map[string]float64{}}
	loads := 0
	for _, e := range ev.Recording.Events {
		switch e.Type {
		case "jdk.ExecutionSample", "jdk.NativeMethodSample":
			fs := e.Values.StackTrace.Frames
			if e.Type == "jdk.NativeMethodSample" {
				if len(fs) == 0 || waiting(fs[0].Method.Type.Name, fs[0].Method.Name) {
					continue
				}
				p.NativeSamples++
			}
			classes := make([]string, len(fs))
			for i, f := range fs {
				classes[i] = f.Method.Type.Name
			}
			p.Samples++
			p.Activities[activity(classes)]++
			p.Threads[threadGroup(e.Values.SampledThread.JavaName)]++
		case "jdk.CPULoad":
			// Fractions of the whole machine, once a second; the first
			// covers nothing yet.
			if loads++; loads > 1 {
				p.JVMUser += e.Values.JVMUser
				p.JVMSystem += e.Values.JVMSystem
			}
		case "jdk.GarbageCollection":
			p.GCPauses++
			var s string
			if json.Unmarshal(e.Values.SumOfPauses, &s) == nil {
				if d, err := isoDuration(s); err == nil {
					p.GCPauseMs += float64(d) / float64(time.Millisecond)
				}
			}
		}
	}
	if loads > 1 {
		cores := float64(runtime.NumCPU())
		p.JVMUser *= cores / float64(loads-1)
		p.JVMSystem *= cores / float64(loads-1)
	}
	if p.Samples == 0 {
		return p, fmt.Errorf("no execution samples in %s", file)
	}
	for _, m := range []map[string]float64{p.Activities, p.Threads} {
		for k := range m {
			m[k] /= float64(p.Samples)
		}
	}
	return p, nil
}

// waiting reports whether a native method is one a thread waits in (for
// sockets, a lock, a timer): such a sample is not CPU.
func waiting(class, method string) bool {
	class = strings.ReplaceAll(class, "/", ".")
	switch class + "." + method {
	case "sun.nio.ch.EPoll.wait", "jdk.internal.misc.Unsafe.park", "java.lang.Thread.sleep", "java.lang.Object.wait",
		"sun.nio.ch.Net.accept", "sun.nio.ch.Net.poll", "sun.nio.ch.Net.connect0":
		return true
	}
	return false
}

// activityRules name what the broker's code does, by class-name prefix;
// a sample counts for the rule of the frame nearest its top that matches
// one, so a CRC computed while validating a batch counts as validation.
var activityRules = []struct{ prefix, activity string }{
	{"org.apache.kafka.storage.internals.log.ProducerStateManager", actIdempotence},
	{"org.apache.kafka.storage.internals.log.ProducerAppendInfo", actIdempotence},
	{"org.apache.kafka.storage.internals.log.ProducerStateEntry", actIdempotence},
	{"org.apache.kafka.storage.internals.log.LogValidator", actRecords},
	// The log's files, though their classes sit with the records'.
	{"org.apache.kafka.common.record.FileRecords", actLog},
	{"org.apache.kafka.common.record.FileLogInputStream", actLog},
	{"org.apache.kafka.common.record.", actRecords},
	{"org.apache.kafka.common.compress.", actRecords},
	{"org.apache.kafka.storage.", actLog},
	{"kafka.log.", actLog},
	{"kafka.cluster.Partition", actReplication},
	{"kafka.server.ReplicaManager", actReplication},
	{"kafka.server.Delayed", actReplication},
	{"org.apache.kafka.server.purgatory.", actReplication},
	{"org.apache.kafka.server.util.timer.", actReplication},
	{"kafka.coordinator.", actCoordinators},
	{"org.apache.kafka.coordinator.", actCoordinators},
	{"org.apache.kafka.raft.", actKRaft},
	{"org.apache.kafka.controller.", actKRaft},
	{"org.apache.kafka.metadata.", actKRaft},
	{"org.apache.kafka.image.", actKRaft},
	{"kafka.server.metadata.", actKRaft},
	{"kafka.raft.", actKRaft},
	{"org.apache.kafka.common.metrics.", actMetrics},
	{"com.yammer.metrics.", actMetrics},
	{"kafka.server.KafkaApis", actRequests},
	{"kafka.server.KafkaRequestHandler", actRequests},
	{"kafka.network.RequestChannel", actRequests},
	{"org.apache.kafka.common.requests.", actRequests},
	{"org.apache.kafka.common.message.", actRequests},
	{"org.apache.kafka.common.protocol.", actRequests},
	{"kafka.network.", actNetwork},
	{"org.apache.kafka.common.network.", actNetwork},
}

const (
	actIdempotence  = "producer state (idempotence)"
	actRecords      = "record batches: validation, CRC, compression"
	actLog          = "log append and read"
	actReplication  = "replication, high watermark, purgatory"
	actCoordinators = "group and transaction coordinators"
	actKRaft        = "KRaft controller and metadata"
	actMetrics      = "metrics"
	actRequests     = "requests: parse, dispatch, respond"
	actNetwork      = "network I/O"
	actOther        = "other (JDK and Kafka's utilities only)"
)

// activities is the order of the rows in the results.
var activities = []string{actNetwork, actRequests, actRecords, actLog, actIdempotence, actReplication,
	actCoordinators, actKRaft, actMetrics, actOther}

// activity is what a sample's stack (top frame first) does.
func activity(classes []string) string {
	for _, c := range classes {
		c = strings.ReplaceAll(c, "/", ".")
		for _, r := range activityRules {
			if strings.HasPrefix(c, r.prefix) {
				return r.activity
			}
		}
	}
	return actOther
}

// threadGroup is a broker thread's kind, from its name.
func threadGroup(name string) string {
	switch {
	case strings.Contains(name, "network-thread"):
		return "network threads"
	case strings.Contains(name, "request-handler"):
		return "request handlers"
	case strings.Contains(name, "ExpirationReaper"):
		return "purgatory reapers"
	case strings.Contains(name, "log-cleaner"):
		return "log cleaner"
	case strings.Contains(name, "kafka-scheduler"):
		return "scheduler"
	case strings.Contains(name, "raft") || strings.Contains(name, "controller") || strings.Contains(name, "quorum"):
		return "KRaft"
	case strings.Contains(name, "group-coordinator") || strings.Contains(name, "transaction"):
		return "coordinators"
	}
	return "other"
}

// isoDuration reads the ISO 8601 durations jfr prints ("PT0.0021S",
// "PT1M2.5S").
func isoDuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "PT")
	if !ok {
		return 0, fmt.Errorf("not an ISO 8601 time duration: %q", s)
	}
	return time.ParseDuration(strings.ToLower(rest))
}

// brokerMarkdown is the broker recordings' section of the results.
func (r *Results) brokerMarkdown(s *strings.Builder) {
	if len(r.Broker) == 0 {
		return
	}
	s.WriteString("## The broker's CPU by activity (Java Flight Recorder)\n\n")
	s.WriteString("Share of the broker's execution samples (threads running Java code, and threads in a native call that is not a wait), and that share of its CPU per unit (from /proc over the recording). GC and compiler threads and the kernel's side of a call are not sampled: their CPU is spread over the rows, and the user and system CPU below says how much there is. A sample counts for the Kafka code nearest its top. Few samples make wide shares: the counts are below the table.\n\n")
	s.WriteString("| activity |")
	for _, p := range r.Broker {
		fmt.Fprintf(s, " %s: share | µs per %s |", p.Name, p.Unit)
	}
	s.WriteString("\n|---|")
	for range r.Broker {
		s.WriteString("---|---|")
	}
	s.WriteString("\n")
	for _, a := range activities {
		seen := false
		for _, p := range r.Broker {
			seen = seen || p.Activities[a] > 0
		}
		if !seen {
			continue
		}
		fmt.Fprintf(s, "| %s |", a)
		for _, p := range r.Broker {
			fmt.Fprintf(s, " %.1f %% | %.1f |", 100*p.Activities[a], p.Activities[a]*p.CPUMicros)
		}
		s.WriteString("\n")
	}
	s.WriteString("| all (broker CPU per unit) |")
	for _, p := range r.Broker {
		fmt.Fprintf(s, " 100 %% | %.1f |", p.CPUMicros)
	}
	s.WriteString("\n\n")
	for _, p := range r.Broker {
		var ts []string
		for t := range p.Threads {
			ts = append(ts, t)
		}
		slices.SortFunc(ts, func(a, b string) int { return cmp.Compare(p.Threads[b], p.Threads[a]) })
		fmt.Fprintf(s, "- %s: %d samples (%d of them in a native call) in %.1f s (%s); the broker's CPU %.2f cores user, %.2f system; by thread:",
			p.Name, p.Samples, p.NativeSamples, p.Seconds, p.File, p.JVMUser, p.JVMSystem)
		for i, t := range ts {
			if i > 0 {
				s.WriteString(",")
			}
			fmt.Fprintf(s, " %s %.0f %%", t, 100*p.Threads[t])
		}
		fmt.Fprintf(s, "; %d collections, %.0f ms of pauses.\n", p.GCPauses, p.GCPauseMs)
	}
	s.WriteString("\n")
}
