# Kubernetes manifests: the tools that check them, and the check. Included from the Makefile
# (after its variables). Both tools come from the Go module proxy, built with the machine's
# Go into $(STATE)/tools/bin (git-ignored); a target skips a tool that is already there.

STATE             ?= .driftloop
PY                ?= .venv/bin/python
K8S_TOOLS_BIN     := $(STATE)/tools/bin
KUSTOMIZE_VERSION ?= v5.8.1
# Prometheus 3.x's Go module is tagged v0.3xx.y; remove_all_sd leaves service discovery
# (cloud SDKs) out of promtool, which `check rules` does not use.
PROMTOOL_VERSION  ?= v0.316.0
KUSTOMIZE         := $(K8S_TOOLS_BIN)/kustomize
PROMTOOL          := $(K8S_TOOLS_BIN)/promtool
# The Prometheus server that `make up` runs, from the same module and version as promtool.
PROMETHEUS        := $(K8S_TOOLS_BIN)/prometheus

.PHONY: k8s-tools check-k8s prometheus

$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "kustomize is built with Go: install Go (1.24+)"; exit 1; }
	GOBIN=$(abspath $(K8S_TOOLS_BIN)) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(PROMTOOL):
	@command -v go >/dev/null || { echo "promtool is built with Go: install Go (1.26.7+)"; exit 1; }
	GOBIN=$(abspath $(K8S_TOOLS_BIN)) go install -tags remove_all_sd \
	  github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

# Without the builtinassets tag (whose assets need a Node.js build) the web UI's pages
# answer 500 "Error opening React index.html"; the HTTP API (/api/v1/*), /metrics and the
# rule evaluation are all there.
$(PROMETHEUS):
	@command -v go >/dev/null || { echo "make up runs a Prometheus built from source with Go:" \
	  "install Go 1.26.7+ (https://go.dev/dl/), then run make up again"; exit 1; }
	GOBIN=$(abspath $(K8S_TOOLS_BIN)) go install -tags remove_all_sd \
	  github.com/prometheus/prometheus/cmd/prometheus@$(PROMTOOL_VERSION)

prometheus: $(PROMETHEUS) ## build the Prometheus server `make up` runs into .driftloop/tools/bin (once)

k8s-tools: $(KUSTOMIZE) $(PROMTOOL) ## build kustomize, promtool and the control plane of the k8s tier (cluster.mk; once)

check-k8s: install $(KUSTOMIZE) $(PROMTOOL) ## kustomize build of each overlay, every object against the vendored upstream schemas, promtool on the alert rules, dashboards parse
	$(PY) -m driftloop_workflows.k8s.check --kustomize $(KUSTOMIZE) --promtool $(PROMTOOL)
