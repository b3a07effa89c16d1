package config

import (
	"strings"
	"testing"
)

func TestShardController(t *testing.T) {
	const nodes = `"nodes":[{"id":1,"addr":"10.0.0.1:7000"},{"id":2,"addr":"10.0.0.2:7000"}]`
	c, err := Parse([]byte(`{` + nodes + `,"groups":[{"id":1,"members":[1,2]},{"id":2,"members":[1,2]}],"shard_controller":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ShardController != 2 {
		t.Fatalf("shard_controller = %d", c.ShardController)
	}
	for in, want := range map[string]string{
		`{` + nodes + `,"groups":[{"id":1,"members":[1,2]}],"shard_controller":3}`: "not in groups",
		`{` + nodes + `,"groups":[{"id":1,"members":[1,2]}],"shard_controller":1}`: "at least one shard group",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", in, err, want)
		}
	}
}
