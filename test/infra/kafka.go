package infra

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

//go:embed kafka-pom.xml
var kafkaPOM []byte

const log4j2XML = `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="${sys:kafka.logs.dir}/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="WARN"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
`

// KafkaLibs returns the folder of the broker's jars for version, resolving
// them from Maven Central with mvn on the first call and reusing the cache
// afterwards. logf reports progress (may be nil).
func KafkaLibs(ctx context.Context, version string, logf func(string, ...any)) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "kafka-"+version)
	libs := filepath.Join(dir, "libs")
	if _, err := os.Stat(filepath.Join(libs, "kafka_2.13-"+version+".jar")); err == nil {
		return libs, nil
	}
	if _, err := lookPath("mvn"); err != nil {
		return "", fmt.Errorf("Kafka %s is not cached in %s and Maven (mvn) is not installed: install a JDK 17+ and Maven", version, dir)
	}
	if logf != nil {
		logf("infra: resolving Kafka %s jars from Maven Central into %s (once)", version, libs)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "resolve-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "pom.xml"), kafkaPOM, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "libs")
	if _, err := run(ctx, tmp, nil, "mvn", "-q", "-B", "-f", "pom.xml",
		"-Dkafka.version="+version,
		"dependency:copy-dependencies", "-DoutputDirectory="+out, "-DincludeScope=runtime"); err != nil {
		return "", fmt.Errorf("resolve Kafka jars: %w", err)
	}
	_ = os.RemoveAll(libs)
	if err := os.Rename(out, libs); err != nil {
		return "", err
	}
	return libs, nil
}

// kafkaProps is the single-node broker's configuration; the container
// image's start script uses it with shell variables for the arguments.
func kafkaProps(host, port, controllerPort, dataDir string) string {
	return `process.roles=broker,controller
node.id=1
controller.quorum.voters=1@` + host + `:` + controllerPort + `
listeners=PLAINTEXT://` + host + `:` + port + `,CONTROLLER://` + host + `:` + controllerPort + `
advertised.listeners=PLAINTEXT://` + host + `:` + port + `
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=` + dataDir + `
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.cleaner.backoff.ms=1000
auto.create.topics.enable=false
`
}

// KafkaConfig says how to run a broker.
type KafkaConfig struct {
	Libs    string // from KafkaLibs
	Version string // for reporting
	Dir     string // data, config and logs; created if missing
	Detach  bool   // outlive this process (infra up)
	// Port and ControllerPort, 0 = pick free ones.
	Port, ControllerPort int
}

// Kafka is a running single-node KRaft broker+controller.
type Kafka struct {
	cfg  KafkaConfig
	proc *process
}

// StartKafka formats storage (first time) and starts the broker, waiting
// until a metadata request succeeds. Ports left 0 are picked free, and
// picked again when the broker finds one taken.
func StartKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	if _, err := lookPath("java"); err != nil {
		return nil, fmt.Errorf("java not found: Kafka %s needs a JDK 17 or newer", cfg.Version)
	}
	if cfg.Port != 0 && cfg.ControllerPort != 0 {
		return startKafka(ctx, cfg)
	}
	var k *Kafka
	err := withFreshPorts(2, func(ports []int) error {
		c := cfg
		if c.Port == 0 {
			c.Port = ports[0]
		}
		if c.ControllerPort == 0 {
			c.ControllerPort = ports[1]
		}
		var err error
		k, err = startKafka(ctx, c)
		return err
	})
	return k, err
}

func startKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	k := &Kafka{cfg: cfg}
	props := kafkaProps("127.0.0.1", itoa(cfg.Port), itoa(cfg.ControllerPort), filepath.Join(cfg.Dir, "data"))
	if err := os.WriteFile(k.file("server.properties"), []byte(props), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.file("log4j2.xml"), []byte(log4j2XML), 0o644); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "data", "meta.properties")); err != nil {
		out, err := run(ctx, cfg.Dir, nil, k.java("-Xmx256m", "kafka.tools.StorageTool", "random-uuid")...)
		if err != nil {
			return nil, err
		}
		id := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(id, '\n'); i >= 0 {
			id = strings.TrimSpace(id[i+1:])
		}
		if _, err := run(ctx, cfg.Dir, nil, k.java("-Xmx256m", "kafka.tools.StorageTool", "format", "-t", id, "-c", k.file("server.properties"))...); err != nil {
			return nil, err
		}
	}
	return k, k.Start(ctx)
}

func (k *Kafka) file(name string) string { return filepath.Join(k.cfg.Dir, name) }

func (k *Kafka) java(heap string, args ...string) []string {
	return append([]string{"java", heap, "-XX:+UseSerialGC",
		"-Dlog4j2.configurationFile=" + k.file("log4j2.xml"),
		"-Dkafka.logs.dir=" + k.cfg.Dir,
		"-cp", filepath.Join(k.cfg.Libs, "*")}, args...)
}

// LogFile is the broker's log (server.log) plus its stdout/stderr (console.log).
func (k *Kafka) LogFile() string { return k.file("server.log") }

// Start starts a stopped broker on the same ports and data.
func (k *Kafka) Start(ctx context.Context) error {
	if k.proc != nil && !k.proc.exited() {
		return nil
	}
	argv := k.java("-Xmx768m", "-Xms256m", "kafka.Kafka", k.file("server.properties"))
	// Fresh logs: a failed start is judged by its own lines.
	_ = os.Remove(k.file("console.log"))
	_ = os.Remove(k.LogFile())
	p, err := startProcess("kafka", k.file("console.log"), k.cfg.Detach, nil, argv...)
	if err != nil {
		return err
	}
	k.proc = p
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := waitFor(wctx, p, k.file("console.log"), k.ping); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return fmt.Errorf("%w\nserver.log:\n%s", err, tail(k.LogFile(), 30))
	}
	return nil
}

// ping succeeds when the broker answers a metadata request and lists
// itself.
func (k *Kafka) ping(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.RetryTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	if len(md.Brokers) == 0 || md.Controller < 0 {
		return errNotReady
	}
	return nil
}

// Stop stops the broker gracefully (SIGTERM), as an operator would.
func (k *Kafka) Stop() { k.proc.stop(syscall.SIGTERM, 30*time.Second) }

// Kill stops the broker with SIGKILL.
func (k *Kafka) Kill() { k.proc.stop(syscall.SIGKILL, time.Second) }

// Addr is the bootstrap address.
func (k *Kafka) Addr() string { return fmt.Sprintf("127.0.0.1:%d", k.cfg.Port) }

// Version is the broker's version.
func (k *Kafka) Version() string { return k.cfg.Version }

// PID is the broker's process (group) id.
func (k *Kafka) PID() int { return k.proc.pid() }
