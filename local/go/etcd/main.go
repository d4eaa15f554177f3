// Command etcd is upstream etcd's own server entry point (the same call the release
// binary makes), built from the pinned go.etcd.io/etcd/server/v3 module for local mode.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
