// The real node's cluster DNS: CoreDNS with only the plugins hack/realnode/Corefile.in uses.
// hack/tools.sh builds it in a wrapper module that requires github.com/coredns/coredns at the
// pinned version (CoreDNS's documented way to choose plugins without its code generator):
// the full plugin set takes several times longer to build and brings cloud clients the
// cluster never uses.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func init() {
	// the order in which a query passes the plugins (a subset of CoreDNS's own order)
	dnsserver.Directives = []string{"bind", "errors", "cache", "kubernetes"}
}

func main() { coremain.Run() }
