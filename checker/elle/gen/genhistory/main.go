// Command genhistory writes a synthetic, strict-serializable list-append or
// rw-register history as JSON lines, for benchmarking `chaos check` on
// histories of any size:
//
//	go run ./checker/elle/gen/genhistory -txns 1000000 -o /tmp/h/history.jsonl
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/chaoskv/chaos/checker/elle/gen"
	"github.com/chaoskv/chaos/history"
)

func main() {
	var (
		out      = flag.String("o", "history.jsonl", "output file")
		workload = flag.String("workload", "list-append", "list-append or rw-register")
		cfg      gen.Config
	)
	flag.IntVar(&cfg.Txns, "txns", 100_000, "transactions")
	flag.IntVar(&cfg.Processes, "processes", 16, "concurrent client processes")
	flag.IntVar(&cfg.Keys, "keys", 100, "keys in use at any moment")
	flag.Float64Var(&cfg.FailRate, "fail", 0.01, "fraction of aborted transactions")
	flag.Float64Var(&cfg.InfoRate, "info", 0.01, "fraction of indeterminate transactions")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	flag.StringVar(&cfg.Inject, "inject", "", "plant one anomaly of this kind (list-append only)")
	flag.Parse()
	if err := run(*out, *workload, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "genhistory:", err)
		os.Exit(1)
	}
}

func run(path, workload string, cfg gen.Config) error {
	var ops []history.Op
	var err error
	switch workload {
	case "list-append":
		ops, err = gen.ListAppend(cfg)
	case "rw-register":
		ops, err = gen.RWRegister(cfg)
	default:
		return fmt.Errorf("unknown workload %q (want list-append or rw-register)", workload)
	}
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := history.NewWriter(bw)
	for i := range ops {
		if err := w.Write(&ops[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
