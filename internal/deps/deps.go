//go:build deps

// Package deps pins the project's chosen third-party modules (DESIGN.md) in
// go.mod before every package that uses them exists. It is built only with
// the "deps" tag.
package deps

import (
	_ "github.com/anishathalye/porcupine"
	_ "github.com/docker/docker/client"
	_ "github.com/google/nftables"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/urfave/cli/v2"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "gonum.org/v1/plot"
)
