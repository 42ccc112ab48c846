package processor

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// deadLetterInfo is what the DLQ headers say about a dead letter.
type deadLetterInfo struct {
	step         string
	class        string
	err          string
	attempts     int
	firstFailure time.Time
	lastFailure  time.Time
}

// dlqRecord builds the dead letter of rec: the original key and value
// unchanged, the original headers (minus stale DLQ headers of an earlier
// dead-lettering) and every DLQ header. It goes to the DLQ partition with
// rec's number.
func (p *Processor) dlqRecord(rec *kgo.Record, info deadLetterInfo) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(rec.Headers)+10)
	replayCount := "0"
	for _, h := range rec.Headers {
		if strings.HasPrefix(h.Key, "orderflow-dlq-") {
			continue
		}
		if h.Key == topics.HeaderReplay {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n >= 0 {
				replayCount = strconv.Itoa(n)
			}
		}
		headers = append(headers, h)
	}
	add := func(k, v string) { headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(topics.HeaderDLQTopic, rec.Topic)
	add(topics.HeaderDLQPartition, strconv.Itoa(int(rec.Partition)))
	add(topics.HeaderDLQOffset, strconv.FormatInt(rec.Offset, 10))
	add(topics.HeaderDLQStep, info.step)
	add(topics.HeaderDLQClass, info.class)
	add(topics.HeaderDLQError, truncate(info.err, p.cfg.MaxErrorLen))
	add(topics.HeaderDLQAttempts, strconv.Itoa(info.attempts))
	add(topics.HeaderDLQFirstFailure, info.firstFailure.UTC().Format(time.RFC3339))
	add(topics.HeaderDLQLastFailure, info.lastFailure.UTC().Format(time.RFC3339))
	add(topics.HeaderDLQReplayCount, replayCount)
	return &kgo.Record{
		Topic:     p.cfg.Topics.DLQ,
		Partition: rec.Partition,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers,
	}
}

// produce writes a record synchronously, retrying until it is acknowledged;
// it gives up only when the partition stops (after at least one attempt).
func (p *Processor) produce(part *partition, r *kgo.Record, what string, orderID string) (*kgo.Record, error) {
	for attempt := 1; ; attempt++ {
		if err := p.ioCtx.Err(); err != nil {
			return nil, fmt.Errorf("write %s: %w", what, err) // killed: write nothing more
		}
		// Only a confirmed member writes, and the record must be sent
		// while the confirmation is trusted (fence.go).
		if !p.member.await(part.stepCtx.Done(), fenceRetry) {
			return nil, fmt.Errorf("write %s: %w", what, errFenced)
		}
		rec := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers}
		ctx, cancel := context.WithTimeout(p.ioCtx, p.cfg.ProduceTimeout)
		ctx, cancelFence := context.WithDeadline(ctx, p.member.deadline())
		out, err := p.gp.ProduceSync(ctx, rec)
		cancelFence()
		cancel()
		if err == nil {
			return out, nil
		}
		if part.stopping() || p.ioCtx.Err() != nil {
			return nil, fmt.Errorf("write %s: %w", what, err)
		}
		p.log.Error("write failed; retrying", "what", what, "order_id", orderID, "attempt", attempt, "err", err)
		if !sleep(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second), part.stopCh) {
			return nil, fmt.Errorf("write %s: %w", what, err)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
