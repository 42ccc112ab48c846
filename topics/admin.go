package topics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Difference is one way a cluster's topics differ from the specs.
type Difference struct {
	Topic  string
	Reason string
}

func (d Difference) String() string { return d.Topic + ": " + d.Reason }

// Create creates every spec'd topic that does not exist yet, with
// replication factor rf (-1 = broker default). Existing topics are left
// alone (Check reports how they differ). It is safe to run again and returns
// the names it created.
func Create(ctx context.Context, adm *kadm.Client, specs []Spec, rf int16) ([]string, error) {
	var created []string
	for _, s := range specs {
		cfg := make(map[string]*string, len(s.Configs))
		for k, v := range s.Configs {
			cfg[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, rf, cfg, s.Name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			created = append(created, s.Name)
		case errors.Is(err, kerr.TopicAlreadyExists):
		default:
			return created, fmt.Errorf("create topic %s: %w", s.Name, err)
		}
	}
	return created, waitVisible(ctx, adm, created)
}

// waitVisible waits until newly created topics appear in metadata with
// their partitions, so that a Check or a producer right after Create sees
// them.
func waitVisible(ctx context.Context, adm *kadm.Client, names []string) error {
	if len(names) == 0 {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err := adm.ListTopics(ctx, names...)
		ok := err == nil
		for _, n := range names {
			if d, found := details[n]; !found || d.Err != nil || len(d.Partitions) == 0 {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("created topics not visible in metadata after 30s: %v", names)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Check compares the cluster with the specs and returns every difference:
// a missing topic, a wrong partition count, a co-partitioning mismatch, a
// wrong cleanup policy. An empty result means the cluster matches.
func Check(ctx context.Context, adm *kadm.Client, specs []Spec) ([]Difference, error) {
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var existing []string
	for _, s := range specs {
		if d, ok := details[s.Name]; ok && d.Err == nil {
			existing = append(existing, s.Name)
		}
	}
	var configs kadm.ResourceConfigs
	if len(existing) > 0 {
		configs, err = adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil {
			return nil, fmt.Errorf("describe topic configs: %w", err)
		}
	}
	policy := func(topic string) string {
		for _, rc := range configs {
			if rc.Name != topic {
				continue
			}
			for _, c := range rc.Configs {
				if c.Key == "cleanup.policy" && c.Value != nil {
					return *c.Value
				}
			}
		}
		return ""
	}
	partitions := func(topic string) (int, bool) {
		d, ok := details[topic]
		if !ok || d.Err != nil {
			return 0, false
		}
		return len(d.Partitions), true
	}

	var diffs []Difference
	for _, s := range specs {
		n, ok := partitions(s.Name)
		if !ok {
			reason := "missing"
			if d, found := details[s.Name]; found && d.Err != nil && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				reason = "cannot be described: " + d.Err.Error()
			}
			diffs = append(diffs, Difference{s.Name, reason})
			continue
		}
		if s.CopartitionWith != "" {
			if m, ok := partitions(s.CopartitionWith); ok && m != n {
				diffs = append(diffs, Difference{s.Name, fmt.Sprintf("not co-partitioned with %s (%d partitions against its %d)", s.CopartitionWith, n, m)})
			}
		}
		if int32(n) != s.Partitions {
			diffs = append(diffs, Difference{s.Name, fmt.Sprintf("has %d partitions, want %d", n, s.Partitions)})
		}
		if got, want := policy(s.Name), s.CleanupPolicy(); got != want {
			diffs = append(diffs, Difference{s.Name, fmt.Sprintf("cleanup.policy is %q, want %q", got, want)})
		}
	}
	sort.SliceStable(diffs, func(i, j int) bool { return diffs[i].Topic < diffs[j].Topic })
	return diffs, nil
}
