package kvnodedb

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/workloads"
)

// sut opens kvnode sessions; keys are spread over the groups by hash.
type sut struct {
	file    *config.Cluster
	attempt time.Duration
}

func (s *sut) groupClient(g replica.GroupID) (*client.Client, error) {
	cfg, err := client.FromCluster(s.file, g)
	if err != nil {
		return nil, err
	}
	cfg.AttemptTimeout = s.attempt
	return client.New(cfg)
}

// OpenKV returns a session that opens one kvnode client per group lazily.
func (s *sut) OpenKV(context.Context) (workloads.KV, error) {
	return &session{s: s, clients: map[replica.GroupID]*client.Client{}}, nil
}

type session struct {
	s       *sut
	clients map[replica.GroupID]*client.Client
}

// GroupOf returns the group that holds key among the cluster's groups.
func GroupOf(key string, groups []config.Group) replica.GroupID {
	h := fnv.New32a()
	h.Write([]byte(key))
	return groups[int(h.Sum32()%uint32(len(groups)))].ID
}

func (c *session) client(key string) (*client.Client, error) {
	g := GroupOf(key, c.s.file.Groups)
	if cl, ok := c.clients[g]; ok {
		return cl, nil
	}
	cl, err := c.s.groupClient(g)
	if err != nil {
		return nil, workloads.Definite(err)
	}
	c.clients[g] = cl
	return cl, nil
}

// classify marks the kvnode client's certain failures as definite.
func classify(err error) error {
	if err != nil && errors.Is(err, client.ErrFailed) {
		return workloads.Definite(err)
	}
	return err
}

func (c *session) Get(ctx context.Context, key string) (string, bool, error) {
	cl, err := c.client(key)
	if err != nil {
		return "", false, err
	}
	r, err := cl.Get(ctx, key)
	return r.Value, r.Found, classify(err)
}

func (c *session) Put(ctx context.Context, key, value string) error {
	cl, err := c.client(key)
	if err != nil {
		return err
	}
	return classify(cl.Put(ctx, key, value))
}

func (c *session) CAS(ctx context.Context, key, old, new string) (bool, error) {
	cl, err := c.client(key)
	if err != nil {
		return false, err
	}
	r, err := cl.Cas(ctx, key, old, new)
	return r.Swapped, classify(err)
}

func (c *session) Close() error {
	for g, cl := range c.clients {
		cl.Close()
		delete(c.clients, g)
	}
	return nil
}
