package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

const topicsUsage = `topics create|check [flags]

  create  creates every orderflow topic that is missing (safe to run again)
  check   compares the cluster with the expected topics; exits 1 and names
          every difference (missing topic, co-partitioning, cleanup policy,
          and the partition count when --partitions is given)

Without --partitions, the topics are checked against the count orders
already has (a new cluster gets 12).`

func runTopics(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	if len(args) == 0 || (args[0] != "create" && args[0] != "check") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(stdout, "Usage: orderflow %s\n", topicsUsage)
			return nil
		}
		return usagef("topics: want 'create' or 'check' (run 'orderflow topics --help')")
	}
	sub := args[0]
	fs := newFlagSet("topics "+sub, topicsUsage, stderr)
	kf.register(fs)
	kf.registerTimeout(fs)
	partitions := fs.Int("partitions", topics.DefaultPartitions, "partitions of orders (orders.state and orders.dlq get the same); default: the count orders has, or 12 for a new cluster")
	rf := fs.Int("replication-factor", -1, "replication factor for new topics: from 1 to 32767, or -1 for the broker's default")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("topics %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if *partitions < 1 || *partitions > math.MaxInt32 {
		return usagef("--partitions must be from 1 to %d", math.MaxInt32)
	}
	if *rf != -1 && (*rf < 1 || *rf > math.MaxInt16) {
		return usagef("--replication-factor %d: want from 1 to %d, or -1 for the broker's default", *rf, math.MaxInt16)
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "partitions" })
	opts, err := kf.opts()
	if err != nil {
		return err
	}
	ctx, stop := kf.wait(ctx, &stderr, "describing the topics")
	defer stop()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Without --partitions, the count is the one orders already has (a dev
	// broker has 3): check co-partitioning and policies, not a count
	// nobody asked for. A new cluster gets the default.
	n := int32(*partitions)
	if !explicit {
		details, err := adm.ListTopics(ctx, kf.names().Orders)
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		if d, ok := details[kf.names().Orders]; ok && d.Err == nil && len(d.Partitions) > 0 {
			n = int32(len(d.Partitions))
		}
	}
	specs := kf.names().Specs(n)

	if sub == "create" {
		created, err := topics.Create(ctx, adm, specs, int16(*rf))
		for _, name := range created {
			fmt.Fprintf(stdout, "created %s\n", name)
		}
		if err != nil {
			return err
		}
		diffs, err := topics.Check(ctx, adm, specs)
		if err != nil {
			return err
		}
		if len(created) == 0 && len(diffs) == 0 {
			fmt.Fprintln(stdout, "all topics exist")
		}
		if len(created) == 0 && len(diffs) > 0 {
			fmt.Fprintln(stdout, "all topics exist, but they differ from what orderflow expects:")
		}
		return reportDiffs(diffs, stdout, stderr)
	}
	diffs, err := topics.Check(ctx, adm, specs)
	if err != nil {
		return err
	}
	return reportDiffs(diffs, stdout, stderr)
}

func reportDiffs(diffs []topics.Difference, stdout, stderr io.Writer) error {
	if len(diffs) == 0 {
		fmt.Fprintln(stdout, "topics ok")
		return nil
	}
	for _, d := range diffs {
		fmt.Fprintln(stderr, d.String())
	}
	return fmt.Errorf("%d topic difference(s)", len(diffs))
}
