// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 at the version
// go.mod names (the etcd repository's own main package is a one-line call to the same).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
