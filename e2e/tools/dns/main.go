// Command coredns is CoreDNS with only the plugins the real node needs: cluster names
// from the API server (kubernetes), served on the pod bridge's address only (bind);
// other names get no answer. Built for the end-to-end
// tests only; nothing here ships. Its own module, so CoreDNS's dependencies cannot move
// the control plane's versions.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

// The plugins in the order a query passes through them (CoreDNS's plugin.cfg order).
var directives = []string{"bind", "errors", "log", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
