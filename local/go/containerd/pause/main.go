// pause: the sandbox process of every pod on local mode's node (the role of
// registry.k8s.io/pause, which cannot be pulled here). It holds the pod's namespaces open:
// it sleeps until SIGINT or SIGTERM and, as PID 1 of the pod, reaps any orphan.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
