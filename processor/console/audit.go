package console

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// KafkaAuditor writes audit records to `orders.audit` and waits for the
// acknowledgement (acks=all, idempotent).
type KafkaAuditor struct {
	cl    *kgo.Client
	topic string
}

// NewKafkaAuditor returns an auditor writing to topic; opts are the
// connection options.
func NewKafkaAuditor(opts []kgo.Opt, topic string) (*KafkaAuditor, error) {
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(10*time.Second),
	)...)
	if err != nil {
		return nil, fmt.Errorf("console: kafka client: %w", err)
	}
	return &KafkaAuditor{cl: cl, topic: topic}, nil
}

// Audit writes a and waits for the broker.
func (k *KafkaAuditor) Audit(ctx context.Context, a topics.AuditRecord) error {
	v, err := a.Encode()
	if err != nil {
		return err
	}
	if err := k.cl.ProduceSync(ctx, &kgo.Record{Topic: k.topic, Key: []byte(a.Actor), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("write audit record to %s: %w", k.topic, err)
	}
	return nil
}

// Close releases the client.
func (k *KafkaAuditor) Close() { k.cl.Close() }
