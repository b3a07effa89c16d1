// Command kvnode runs one node of a kvnode cluster, or talks to a cluster
// as a client.
//
//	kvnode --cluster cluster.json --id 1 --data /data [--listen ADDR] [--client-listen ADDR] [--admin ADDR]
//	kvnode client --cluster cluster.json [--group 1] [--timeout 5s] get KEY | put KEY VALUE | append KEY SUFFIX | cas KEY OLD NEW
//
// The node stops gracefully on SIGTERM or SIGINT. Exit codes: 0 success, 1
// runtime error (for the client: the operation certainly failed), 2 bad
// arguments, 3 (client only) the outcome is unknown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

const (
	exitOK      = 0
	exitError   = 1
	exitBadArgs = 2
	exitUnknown = 3
)

// unsafeNoFsync is the --fsync value that turns every sync off, so that
// tests can show what a store that forgets to fsync loses.
const unsafeNoFsync = "unsafe-none-test-only"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "client" {
		return runClient(args[1:], stdout, stderr)
	}
	return runNode(args, stderr)
}

func runNode(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clusterPath := fs.String("cluster", "", "cluster file (JSON)")
	id := fs.Uint("id", 0, "this node's id in the cluster file")
	data := fs.String("data", "", "data directory")
	listen := fs.String("listen", "", "peer listen address (default: the node's addr)")
	clientListen := fs.String("client-listen", "", "client listen address (default: the node's client_addr, if any)")
	admin := fs.String("admin", "", "admin HTTP address (default: the node's admin_addr, if any)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	maxBatch := fs.Int("max-batch", 0, "requests per log entry (0: default)")
	maxInflight := fs.Int("max-inflight", 0, "uncommitted entries in flight (0: default)")
	snapEvery := fs.Uint64("snapshot-every", 0, "snapshot every so many applied entries (0: default)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kvnode --cluster FILE --id N --data DIR [flags]")
		fmt.Fprintln(stderr, "       kvnode client --cluster FILE [--group G] [--timeout D] get KEY | put KEY VALUE | append KEY SUFFIX | cas KEY OLD NEW")
		fs.PrintDefaults()
	}
	clockOffset := fs.Duration("clock-offset", 0, "shift the node's wall clock by this much (default: $"+server.ClockOffsetEnv+", else 0)")
	fsync := fs.String("fsync", "full", "full: bbolt's two syncs per transaction (survives power loss); once: one sync per batch (survives process crashes only); "+unsafeNoFsync+": never sync (TEST ONLY: loses acknowledged writes at a power loss)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadArgs
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kvnode: "+format+"\n", a...)
		return exitBadArgs
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return bad("--log-level: %v", err)
	}
	offset, err := server.ClockOffsetFromEnv()
	if err != nil {
		return bad("%v", err)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "clock-offset" {
			offset = *clockOffset
		}
	})
	server.SetClockOffset(offset)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl, ReplaceAttr: server.SkewedTime}))
	slog.SetDefault(log)
	switch {
	case *clusterPath == "":
		return bad("--cluster is required")
	case *id == 0 || *id > 1<<32-1:
		return bad("--id must be a node id from the cluster file")
	case *data == "":
		return bad("--data is required")
	}
	for name, a := range map[string]string{"--listen": *listen, "--client-listen": *clientListen, "--admin": *admin} {
		if a != "" {
			if err := config.CheckAddr(a); err != nil && !isWildcard(a) {
				return bad("%s: %v", name, err)
			}
		}
	}
	if *fsync != "full" && *fsync != "once" && *fsync != unsafeNoFsync {
		return bad("--fsync: want full, once or %s, got %q", unsafeNoFsync, *fsync)
	}
	if *fsync == unsafeNoFsync {
		log.Warn("--fsync " + unsafeNoFsync + ": this node never syncs its storage and loses acknowledged writes at a power loss; for tests only")
	}
	c, err := config.Load(*clusterPath)
	if err != nil {
		return bad("%v", err)
	}
	proto, err := protocols.Lookup(c.Protocol)
	if err != nil {
		return bad("cluster file %s: protocol: %v", *clusterPath, err)
	}
	n, err := server.New(server.Options{
		Cluster: c, ID: replica.NodeID(*id), DataDir: *data, Protocol: proto,
		Listen: *listen, ClientListen: *clientListen, AdminListen: *admin,
		MaxBatch: *maxBatch, MaxInflight: *maxInflight, SnapshotEvery: *snapEvery, SyncOnce: *fsync == "once", UnsafeNoSync: *fsync == unsafeNoFsync,
		ShardController: c.ShardController,
		Logger:          log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := n.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return exitError
	}
	return exitOK
}

// isWildcard accepts listen addresses such as ":7000" that CheckAddr (made
// for addresses others dial) refuses.
func isWildcard(a string) bool {
	return len(a) > 1 && a[0] == ':'
}

func runClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clusterPath := fs.String("cluster", "", "cluster file (JSON)")
	group := fs.Uint("group", 1, "replica group")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline for the operation")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kvnode client --cluster FILE [--group G] [--timeout D] get KEY | put KEY VALUE | append KEY SUFFIX | cas KEY OLD NEW")
		fmt.Fprintln(stderr, "exit codes: 0 done, 1 certainly not done, 2 bad arguments, 3 outcome unknown")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadArgs
	}
	if *clusterPath == "" {
		fmt.Fprintln(stderr, "kvnode client: --cluster is required")
		return exitBadArgs
	}
	c, err := config.Load(*clusterPath)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode client: %v\n", err)
		return exitBadArgs
	}
	cfg, err := client.FromCluster(c, replica.GroupID(*group))
	if err != nil {
		fmt.Fprintf(stderr, "kvnode client: %v\n", err)
		return exitBadArgs
	}
	return clientOp(cfg, *timeout, fs.Args(), stdout, stderr)
}

func clientOp(cfg client.Config, timeout time.Duration, args []string, stdout, stderr io.Writer) int {
	cl, err := client.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode client: %v\n", err)
		return exitBadArgs
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := cl.Command(ctx, args)
	switch {
	case err == nil:
		fmt.Fprintln(stdout, out)
		return exitOK
	case errors.Is(err, client.ErrUnknown):
		fmt.Fprintf(stderr, "kvnode client: %v\n", err)
		return exitUnknown
	case errors.Is(err, client.ErrFailed):
		fmt.Fprintf(stderr, "kvnode client: %v\n", err)
		return exitError
	default:
		fmt.Fprintf(stderr, "kvnode client: %v\n", err)
		return exitBadArgs
	}
}
