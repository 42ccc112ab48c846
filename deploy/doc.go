// Package deploy holds the files that run orderflow outside a developer's
// machine: the compose stack (compose/), the Kubernetes manifests
// (kubernetes/), the Grafana dashboard (grafana/) and the Prometheus alert
// rules (prometheus/). It has no code; its tests keep those files honest:
// every metric the dashboard and the alerts name is exported by the running
// gateway and processor, the alert rules pass Prometheus's own parser, every
// manifest has the fields its kind needs, and every flag and ORDERFLOW_*
// variable the files set is one the binary knows.
package deploy
