// Command kvnode runs one node of a kvnode cluster.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kvnode: the node server is not built yet; use `chaos sim` to run the protocol in the simulator")
	os.Exit(2)
}
