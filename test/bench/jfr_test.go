package main

import (
	"strings"
	"testing"
	"time"
)

func TestActivity(t *testing.T) {
	for _, c := range []struct {
		stack []string // top frame first
		want  string
	}{
		// A CRC under the validator under the log's append: validation.
		{[]string{"java.util.zip.CRC32C", "org.apache.kafka.common.utils.Crc32C", "org.apache.kafka.storage.internals.log.LogValidator",
			"kafka.log.UnifiedLog", "kafka.server.ReplicaManager", "kafka.server.KafkaApis"}, actRecords},
		// The producer-state check inside the append.
		{[]string{"java.util.HashMap", "org.apache.kafka.storage.internals.log.ProducerStateManager", "kafka.log.UnifiedLog",
			"kafka.server.ReplicaManager", "kafka.server.KafkaApis"}, actIdempotence},
		// Writing the segment, through the log's record set or not.
		{[]string{"sun.nio.ch.FileChannelImpl", "org.apache.kafka.common.record.FileRecords",
			"org.apache.kafka.storage.internals.log.LogSegment", "kafka.log.UnifiedLog"}, actLog},
		{[]string{"org.apache.kafka.common.record.MemoryRecords", "kafka.server.KafkaApis"}, actRecords},
		{[]string{"sun.nio.ch.FileChannelImpl", "org.apache.kafka.storage.internals.log.LogSegment", "kafka.log.UnifiedLog"}, actLog},
		// The high watermark moved after the append.
		{[]string{"kafka.cluster.Partition", "kafka.server.ReplicaManager", "kafka.server.KafkaApis"}, actReplication},
		// A socket read on a network thread; class names as slashes too.
		{[]string{"sun/nio/ch/SocketChannelImpl", "org/apache/kafka/common/network/PlaintextTransportLayer", "kafka/network/Processor"}, actNetwork},
		{[]string{"org.apache.kafka.common.requests.ProduceResponse", "kafka.server.KafkaApis"}, actRequests},
		{[]string{"org.apache.kafka.raft.KafkaRaftClient"}, actKRaft},
		{[]string{"java.lang.Thread"}, actOther},
		{nil, actOther},
	} {
		if got := activity(c.stack); got != c.want {
			t.Errorf("activity(%v) = %q, want %q", c.stack, got, c.want)
		}
	}
}

func TestWaiting(t *testing.T) {
	for _, c := range []struct {
		class, method string
		want          bool
	}{
		{"sun/nio/ch/EPoll", "wait", true},
		{"jdk.internal.misc.Unsafe", "park", true},
		{"sun/nio/ch/FileDispatcherImpl", "writev0", false},
		{"sun.nio.ch.SocketDispatcher", "read0", false},
	} {
		if got := waiting(c.class, c.method); got != c.want {
			t.Errorf("waiting(%s.%s) = %v, want %v", c.class, c.method, got, c.want)
		}
	}
}

func TestThreadGroup(t *testing.T) {
	for name, want := range map[string]string{
		"data-plane-kafka-network-thread-1-ListenerName(PLAINTEXT)-PLAINTEXT-2": "network threads",
		"data-plane-kafka-request-handler-3":                                    "request handlers",
		"ExpirationReaper-1-Produce":                                            "purgatory reapers",
		"kafka-log-cleaner-thread-0":                                            "log cleaner",
		"kafka-1-raft-io-thread":                                                "KRaft",
		"JFR Periodic Tasks":                                                    "other",
	} {
		if got := threadGroup(name); got != want {
			t.Errorf("threadGroup(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestISODuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"PT0.0021S": 2100 * time.Microsecond,
		"PT1M2.5S":  62500 * time.Millisecond,
		"PT0S":      0,
	} {
		got, err := isoDuration(s)
		if err != nil || got != want {
			t.Errorf("isoDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"0.5S", "P1D", ""} {
		if _, err := isoDuration(s); err == nil {
			t.Errorf("isoDuration(%q) accepted", s)
		}
	}
}

func TestBrokerMarkdown(t *testing.T) {
	r := &Results{Broker: []BrokerProfile{
		{Name: "ingest, 64 connections", Unit: "webhook", CPUMicros: 20, Samples: 1000, NativeSamples: 40, Seconds: 12.5, File: "ingest-64.jfr",
			JVMUser: 0.8, JVMSystem: 0.25,
			Activities: map[string]float64{actNetwork: 0.25, actRequests: 0.5, actOther: 0.25},
			Threads:    map[string]float64{"network threads": 0.3, "request handlers": 0.7}, GCPauses: 4, GCPauseMs: 12},
		{Name: "drain, 0 ms", Unit: "order", CPUMicros: 300, Samples: 500, Seconds: 30, File: "drain-0s.jfr",
			Activities: map[string]float64{actNetwork: 0.1, actLog: 0.9}, Threads: map[string]float64{"request handlers": 1}},
	}}
	var s strings.Builder
	r.brokerMarkdown(&s)
	for _, want := range []string{
		"| activity | ingest, 64 connections: share | µs per webhook | drain, 0 ms: share | µs per order |",
		"| network I/O | 25.0 % | 5.0 | 10.0 % | 30.0 |",
		"| requests: parse, dispatch, respond | 50.0 % | 10.0 | 0.0 % | 0.0 |",
		"| log append and read | 0.0 % | 0.0 | 90.0 % | 270.0 |",
		"| all (broker CPU per unit) | 100 % | 20.0 | 100 % | 300.0 |",
		"- ingest, 64 connections: 1000 samples (40 of them in a native call) in 12.5 s (ingest-64.jfr); the broker's CPU 0.80 cores user, 0.25 system; by thread: request handlers 70 %, network threads 30 %; 4 collections, 12 ms of pauses.",
	} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("broker section lacks %q:\n%s", want, s.String())
		}
	}
	if strings.Contains(s.String(), actIdempotence) {
		t.Errorf("a row no recording has is shown:\n%s", s.String())
	}
}
