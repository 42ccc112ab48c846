package main

import (
	"context"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

const topicsUsage = `topics create|check [flags]

  create  creates every orderflow topic that is missing (safe to run again)
  check   compares the cluster with the expected topics; exits 1 and names
          every difference (missing topic, partition count, co-partitioning,
          cleanup policy)`

func runTopics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "check") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(stderr, "Usage: orderflow %s\n", topicsUsage)
			return nil
		}
		return usagef("topics: want 'create' or 'check' (run 'orderflow topics --help')")
	}
	sub := args[0]
	fs := newFlagSet("topics "+sub, topicsUsage, stderr)
	var kf kafkaFlags
	kf.register(fs)
	partitions := fs.Int("partitions", topics.DefaultPartitions, "partitions of orders (orders.state and orders.dlq get the same)")
	rf := fs.Int("replication-factor", -1, "replication factor for new topics (-1: broker default)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("topics %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if *partitions < 1 {
		return usagef("--partitions must be at least 1")
	}
	opts, err := kf.opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	specs := kf.names().Specs(int32(*partitions))

	if sub == "create" {
		created, err := topics.Create(ctx, adm, specs, int16(*rf))
		for _, name := range created {
			fmt.Fprintf(stdout, "created %s\n", name)
		}
		if err != nil {
			return err
		}
		if len(created) == 0 {
			fmt.Fprintln(stdout, "all topics exist")
		}
		diffs, err := topics.Check(ctx, adm, specs)
		if err != nil {
			return err
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
