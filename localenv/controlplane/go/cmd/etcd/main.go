// Command etcd is etcd's own server main, built from go.etcd.io/etcd/server/v3
// so that the test control plane runs a current etcd (Debian's is too old for
// recent Kubernetes).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
