package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/results"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "serve",
		Usage: "serve the run store read-only over HTTP: the runs, newest first, and their reports",
		Description: "Lists the store's runs, newest first and coloured by verdict, with their parameters, and\n" +
			"serves each run's report and files. Read-only; binds to localhost unless told otherwise;\n" +
			"no request reaches outside the store. Ctrl-C shuts it down gracefully.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "address to listen on"},
			&cli.StringFlag{Name: "store", Value: "store", Usage: "the run store's directory"},
		},
		Action: serveAction,
	})
}

// serveListening, when set, is told the bound address; tests use it.
var serveListening func(addr string)

func serveAction(c *cli.Context) error {
	if c.Args().Present() {
		return badArgs("serve takes no arguments (got %q)", c.Args().Slice())
	}
	h, err := results.NewServer(c.String("store"))
	if err != nil {
		return badArgs("--store: %v", err)
	}
	defer h.Close()
	ln, err := net.Listen("tcp", c.String("addr"))
	if err != nil {
		return badArgs("--addr: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(c.App.Writer, "serving %s on http://%s/\n", c.String("store"), ln.Addr())
	if serveListening != nil {
		serveListening(ln.Addr().String())
	}
	select {
	case err := <-done:
		return internal(fmt.Errorf("serve: %w", err))
	case <-ctx.Done():
	}
	slog.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return internal(fmt.Errorf("shut down: %w", err))
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return internal(fmt.Errorf("serve: %w", err))
	}
	return nil
}
