package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/orderflow/orderflow/test/infra"
)

// Images used when the servers come from Docker.
const (
	KafkaImage      = "apache/kafka:" + infra.KafkaVersion
	RedisImage      = "redis:7"
	StripeMockImage = "stripe/stripe-mock:" + infra.StripeMockVersion
)

var docker struct {
	once      sync.Once
	healthErr error

	kafkaOnce, redisOnce, stripeOnce sync.Once
	kafka, redis, stripe             string
	kafkaErr, redisErr, stripeErr    error
}

// dockerHealthy reports whether a Docker engine answers.
func dockerHealthy() (err error) {
	docker.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				docker.healthErr = fmt.Errorf("docker: %v", r)
			}
		}()
		p, err := testcontainers.ProviderDefault.GetProvider()
		if err != nil {
			docker.healthErr = errors.New("no Docker engine for testcontainers")
			return
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if p.Health(ctx) != nil {
			docker.healthErr = errors.New("no Docker engine for testcontainers")
		}
	})
	return docker.healthErr
}

// dockerKafka starts one Kafka container per test binary (the reaper
// removes it when the binary exits). The host port is fixed before start so
// the broker can advertise it.
func dockerKafka() (string, error) {
	if err := dockerHealthy(); err != nil {
		return "", err
	}
	docker.kafkaOnce.Do(func() {
		port, err := infra.FreePort()
		if err != nil {
			docker.kafkaErr = err
			return
		}
		p := strconv.Itoa(port)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := testcontainers.Run(ctx, KafkaImage,
			testcontainers.WithEnv(map[string]string{
				"KAFKA_NODE_ID":                                  "1",
				"KAFKA_PROCESS_ROLES":                            "broker,controller",
				"KAFKA_LISTENERS":                                "PLAINTEXT://:" + p + ",CONTROLLER://:9093",
				"KAFKA_ADVERTISED_LISTENERS":                     "PLAINTEXT://127.0.0.1:" + p,
				"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
				"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
				"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
				"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
				"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
				"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
				"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			}),
			testcontainers.WithExposedPorts(p+"/tcp"),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.PortBindings = network.PortMap{
					network.MustParsePort(p + "/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: p}},
				}
			}),
			testcontainers.WithWaitStrategy(wait.ForListeningPort(p+"/tcp").WithStartupTimeout(2*time.Minute)),
		)
		if err != nil {
			docker.kafkaErr = fmt.Errorf("start %s: %w", KafkaImage, err)
			return
		}
		_ = c
		docker.kafka = "127.0.0.1:" + p
	})
	return docker.kafka, docker.kafkaErr
}

func dockerRedis() (string, error) {
	if err := dockerHealthy(); err != nil {
		return "", err
	}
	docker.redisOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := testcontainers.Run(ctx, RedisImage,
			testcontainers.WithExposedPorts("6379/tcp"),
			testcontainers.WithCmd("redis-server", "--save", "", "--appendonly", "no"),
			testcontainers.WithWaitStrategy(wait.ForLog("Ready to accept connections")))
		if err != nil {
			docker.redisErr = fmt.Errorf("start %s: %w", RedisImage, err)
			return
		}
		docker.redis, docker.redisErr = c.PortEndpoint(ctx, "6379/tcp", "")
	})
	return docker.redis, docker.redisErr
}

func dockerStripeMock() (string, error) {
	if err := dockerHealthy(); err != nil {
		return "", err
	}
	docker.stripeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := testcontainers.Run(ctx, StripeMockImage,
			testcontainers.WithExposedPorts("12111/tcp"),
			testcontainers.WithWaitStrategy(wait.ForListeningPort("12111/tcp")))
		if err != nil {
			docker.stripeErr = fmt.Errorf("start %s: %w", StripeMockImage, err)
			return
		}
		docker.stripe, docker.stripeErr = c.PortEndpoint(ctx, "12111/tcp", "http")
	})
	return docker.stripe, docker.stripeErr
}
