package testenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/orderflow/orderflow/test/infra"
)

// The Docker path: where the ORDERFLOW_TEST_* addresses are unset but a
// Docker engine answers (DOCKER_HOST or /var/run/docker.sock), the shared
// servers are started once per test binary with testcontainers-go from the
// local images test/infra builds (no registry is needed), on the host
// network. Ryuk is not used; the containers are labelled with the test
// binary's pid and removed by the next run (infra.Engine.RemoveOrphans)
// once that process is gone.
var docker struct {
	once   sync.Once
	err    error
	images infra.Images

	kafkaOnce, redisOnce, stripeOnce sync.Once
	kafka, redis, stripe             string
	kafkaErr, redisErr, stripeErr    error
}

// dockerImages finds the engine and builds (or finds) the server images.
func dockerImages() (infra.Images, error) {
	docker.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		e, err := infra.EngineFromEnv(ctx)
		if err != nil {
			docker.err = fmt.Errorf("no Docker engine for testcontainers: %w", err)
			return
		}
		infra.UseEngine(e)
		_ = e.RemoveOrphans(ctx)
		libs, err := infra.KafkaLibs(ctx, infra.KafkaVersion, nil)
		if err != nil {
			docker.err = err
			return
		}
		sm, err := infra.StripeMockBinary(ctx, nil)
		if err != nil {
			docker.err = err
			return
		}
		docker.images, docker.err = e.ServerImages(ctx, libs, sm, nil)
	})
	return docker.images, docker.err
}

func dockerKafka() (string, error) {
	docker.kafkaOnce.Do(func() {
		im, err := dockerImages()
		if err != nil {
			docker.kafkaErr = err
			return
		}
		c, err := infra.KafkaContainer(context.Background(), im.Kafka)
		if err != nil {
			docker.kafkaErr = err
			return
		}
		docker.kafka = c.KafkaAddr()
	})
	return docker.kafka, docker.kafkaErr
}

func dockerRedis() (string, error) {
	docker.redisOnce.Do(func() {
		im, err := dockerImages()
		if err != nil {
			docker.redisErr = err
			return
		}
		c, err := infra.RedisContainer(context.Background(), im.Redis)
		if err != nil {
			docker.redisErr = err
			return
		}
		docker.redis = c.Addr()
	})
	return docker.redis, docker.redisErr
}

func dockerStripeMock() (string, error) {
	docker.stripeOnce.Do(func() {
		im, err := dockerImages()
		if err != nil {
			docker.stripeErr = err
			return
		}
		c, err := infra.StripeMockContainer(context.Background(), im.StripeMock)
		if err != nil {
			docker.stripeErr = err
			return
		}
		docker.stripe = c.URL()
	})
	return docker.stripe, docker.stripeErr
}
