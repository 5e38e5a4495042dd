# A real control plane for the `k8s` test tier: kube-apiserver, etcd and three controllers
# of kube-controller-manager (garbage collector, namespaces, service-account tokens), the
# Argo Workflows controller and server, the KubeRay operator and Argo CD's application
# controller, repo-server and applicationset controller, each built from the Go module proxy
# at the versions pinned here and in cluster/tools/*/go.mod (wrapper modules for the three
# whose go.mod carries replace directives). Included from the Makefile after tools.mk.
#
# The binaries go into $(K8S_CLUSTER_DIR)/bin, a directory keyed by the pins (a change of
# any pin builds into a new directory; the Go caches make that cheap); a target skips a
# tool that is already built. Every build runs under `nice -n 19`, one at a time (do not
# run this target with -j). Each build's seconds are appended to build-times.log there.
#
# Beside the binaries, `upstream/` receives the data files the control plane installs,
# copied from the same modules (Apache-2.0, see upstream/SOURCE): the CRDs of each
# controller and the ConfigMaps/Secret of Argo CD's manifests/install.yaml.

ARGO_WORKFLOWS_VERSION ?= v4.0.5
# ray-operator v1.7.0 is listed by the proxy but its module zip is refused (403).
KUBERAY_VERSION        ?= v1.6.1
# argo-cd v3.6's go.mod says go 1.27.0: the proxy serves that toolchain.
ARGOCD_GOTOOLCHAIN     ?= go1.27.4

K8S_CLUSTER_SRC  := deploy/k8s/cluster
K8S_WRAPPERS     := $(K8S_CLUSTER_SRC)/tools
K8S_CLUSTER_KEY  := $(shell { cat $(K8S_WRAPPERS)/*/go.mod $(K8S_WRAPPERS)/*/go.sum $(K8S_WRAPPERS)/etcd/main.go; \
                      echo $(ARGO_WORKFLOWS_VERSION) $(KUBERAY_VERSION) $(ARGOCD_GOTOOLCHAIN); } | sha256sum | cut -c1-12)
K8S_CLUSTER_DIR  := $(STATE)/tools/k8s-$(K8S_CLUSTER_KEY)
K8S_CLUSTER_BIN  := $(K8S_CLUSTER_DIR)/bin
K8S_CLUSTER_STATE ?= $(STATE)/k8s
K8S_GO_BUILD     := nice -n 19 go build -trimpath
# The version Kubernetes' own build stamps into its binaries (hack/lib/version.sh); without
# it kube-apiserver reports v0.0.0-master and clients that read /version cannot parse it.
K8S_VERSION      := $(shell awk '$$1 == "k8s.io/kubernetes" {print $$2; exit}' $(K8S_WRAPPERS)/kubernetes/go.mod)
K8S_LDFLAGS      := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
                      -X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitTreeState=clean \
                      -X $(p).gitMajor=$(patsubst v%,%,$(word 1,$(subst ., ,$(K8S_VERSION)))) \
                      -X $(p).gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))))
K8S_TOOL_NAMES   := etcd kube-apiserver kube-controller-manager kubectl workflow-controller argo \
                    ray-operator argocd
K8S_CLUSTER_TOOLS := $(addprefix $(K8S_CLUSTER_BIN)/,$(K8S_TOOL_NAMES)) $(K8S_CLUSTER_DIR)/upstream/SOURCE

# $(call k8s_timed,COMMAND): run COMMAND for the target $@ and log how long it took.
k8s_timed = @mkdir -p $(@D); echo "building $(@F) (nice -n 19; minutes on a cold cache)"; \
	s=$$(date +%s); ( $(1) ) || exit 1; \
	echo "$(@F) $$(( $$(date +%s) - s ))s $$(date -u +%FT%TZ)" | tee -a $(K8S_CLUSTER_DIR)/build-times.log

.PHONY: k8s-cluster-tools k8s-deps k8s-up k8s-down k8s-status test-k8s

# What k8s-up runs besides the built tools: redis for Argo CD, socat for the one host port,
# unshare/nsenter/ip for the network namespace.
k8s-deps: ## install socat, redis-server, iproute2, util-linux, curl and openssl from apt when missing (root or sudo)
	deploy/install-debian-packages.sh socat redis-server iproute2 util-linux curl openssl

$(K8S_CLUSTER_BIN)/etcd:
	$(call k8s_timed,cd $(K8S_WRAPPERS)/etcd && $(K8S_GO_BUILD) -o $(abspath $@) .)

$(K8S_CLUSTER_BIN)/kube-apiserver:
	$(call k8s_timed,cd $(K8S_WRAPPERS)/kubernetes && $(K8S_GO_BUILD) -ldflags '$(K8S_LDFLAGS)' -o $(abspath $@) \
	  k8s.io/kubernetes/cmd/kube-apiserver)

$(K8S_CLUSTER_BIN)/kube-controller-manager:
	$(call k8s_timed,cd $(K8S_WRAPPERS)/kubernetes && $(K8S_GO_BUILD) -ldflags '$(K8S_LDFLAGS)' -o $(abspath $@) \
	  k8s.io/kubernetes/cmd/kube-controller-manager)

$(K8S_CLUSTER_BIN)/kubectl:
	$(call k8s_timed,cd $(K8S_WRAPPERS)/kubernetes && $(K8S_GO_BUILD) -ldflags '$(K8S_LDFLAGS)' -o $(abspath $@) \
	  k8s.io/kubernetes/cmd/kubectl)

$(K8S_CLUSTER_BIN)/workflow-controller:
	$(call k8s_timed,GOBIN=$(abspath $(@D)) nice -n 19 go install -trimpath \
	  github.com/argoproj/argo-workflows/v4/cmd/workflow-controller@$(ARGO_WORKFLOWS_VERSION))

# The argo CLI, whose `argo server` is the Argo server. Its module embeds the web UI's built
# assets (ui/dist/app), which need a Node.js build and are not in the module: it is built
# from a copy of the module with a one-page placeholder there (the API is all the tests and
# Hera use), stamped with its version; the copy is removed after.
ARGO_LDFLAGS := $(foreach v,version=$(ARGO_WORKFLOWS_VERSION) gitTag=$(ARGO_WORKFLOWS_VERSION) \
                  gitCommit=release gitTreeState=clean,-X github.com/argoproj/argo-workflows/v4.$(v))
$(K8S_CLUSTER_BIN)/argo:
	$(call k8s_timed,src=$(abspath $(K8S_CLUSTER_DIR))/src/argo-workflows; rm -rf $$src; \
	  mod=$$(go mod download -json github.com/argoproj/argo-workflows/v4@$(ARGO_WORKFLOWS_VERSION) \
	    | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); test -d "$$mod"; \
	  mkdir -p $$(dirname $$src) && cp -r $$mod $$src && chmod -R u+w $$src && \
	  mkdir -p $$src/ui/dist/app && \
	  echo '<!doctype html><title>Argo</title><p>The web UI is not built into this argo.</p>' \
	    > $$src/ui/dist/app/index.html && \
	  cd $$src && $(K8S_GO_BUILD) -ldflags '$(ARGO_LDFLAGS)' -o $(abspath $@) ./cmd/argo; \
	  rc=$$?; rm -rf $$(dirname $$src); exit $$rc)

$(K8S_CLUSTER_BIN)/ray-operator:
	$(call k8s_timed,GOBIN=$(abspath $(@D)) nice -n 19 go install -trimpath \
	  github.com/ray-project/kuberay/ray-operator@$(KUBERAY_VERSION))

# One binary that is each Argo CD component by the name it is called with.
$(K8S_CLUSTER_BIN)/argocd:
	$(call k8s_timed,cd $(K8S_WRAPPERS)/argo-cd && GOTOOLCHAIN=$(ARGOCD_GOTOOLCHAIN) \
	  $(K8S_GO_BUILD) -o $(abspath $@) github.com/argoproj/argo-cd/v3/cmd)
	cd $(@D) && for c in argocd-application-controller argocd-repo-server \
	  argocd-applicationset-controller argocd-git-ask-pass; do ln -sf argocd $$c; done

# Data files from the modules the binaries were built from (the Go module cache holds
# them once a build has downloaded the module).
$(K8S_CLUSTER_DIR)/upstream/SOURCE: | $(K8S_CLUSTER_BIN)/argocd $(K8S_CLUSTER_BIN)/workflow-controller $(K8S_CLUSTER_BIN)/ray-operator
	@set -e; up=$(abspath $(@D)); rm -rf $$up; mkdir -p $$up/argo-cd $$up/argo-workflows $$up/kuberay; \
	cd $(K8S_WRAPPERS)/argo-cd; \
	cd_dir=$$(GOTOOLCHAIN=$(ARGOCD_GOTOOLCHAIN) go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3); \
	cd_ver=$$(GOTOOLCHAIN=$(ARGOCD_GOTOOLCHAIN) go list -m -f '{{.Version}}' github.com/argoproj/argo-cd/v3); \
	wf_dir=$$(go env GOMODCACHE)/github.com/argoproj/argo-workflows/v4@$(ARGO_WORKFLOWS_VERSION); \
	kr_dir=$$(go env GOMODCACHE)/github.com/ray-project/kuberay/ray-operator@$(KUBERAY_VERSION); \
	cp $$cd_dir/manifests/crds/*-crd.yaml $$cd_dir/manifests/install.yaml $$up/argo-cd/; \
	cp $$cd_dir/hack/git-verify-wrapper.sh $(abspath $(K8S_CLUSTER_BIN))/; \
	chmod u+w $$up/argo-cd/* $(abspath $(K8S_CLUSTER_BIN))/git-verify-wrapper.sh; \
	chmod +x $(abspath $(K8S_CLUSTER_BIN))/git-verify-wrapper.sh; \
	cp $$wf_dir/manifests/base/crds/full/argoproj.io_*.yaml $$up/argo-workflows/; \
	cp $$kr_dir/config/crd/bases/ray.io_*.yaml $$up/kuberay/; chmod -R u+w $$up; \
	{ echo "Copied from the Go modules the binaries in ../bin were built from; each is Apache-2.0"; \
	  echo "(the LICENSE file at the root of each module)."; \
	  echo "argo-cd/: github.com/argoproj/argo-cd/v3@$$cd_ver manifests/crds/*-crd.yaml, manifests/install.yaml"; \
	  echo "argo-workflows/: github.com/argoproj/argo-workflows/v4@$(ARGO_WORKFLOWS_VERSION) manifests/base/crds/full/"; \
	  echo "kuberay/: github.com/ray-project/kuberay/ray-operator@$(KUBERAY_VERSION) config/crd/bases/"; \
	  echo "bin/git-verify-wrapper.sh: github.com/argoproj/argo-cd/v3@$$cd_ver hack/git-verify-wrapper.sh"; } > $$up/SOURCE
	@echo "upstream data files in $(@D)"

k8s-cluster-tools: $(K8S_CLUSTER_TOOLS) ## only the control plane of the k8s tier (cluster.mk), into .driftloop/tools/k8s-<pins>/bin
	@echo "control-plane tools in $(K8S_CLUSTER_BIN) ($$(du -sh $(K8S_CLUSTER_DIR) | cut -f1))"

K8S_CLUSTER := $(PY) -m driftloop_workflows.k8s.cluster --tools $(K8S_CLUSTER_DIR) \
	--kustomize $(KUSTOMIZE) --state $(K8S_CLUSTER_STATE)

k8s-up: install k8s-deps k8s-tools ## start etcd, kube-apiserver, Argo Workflows, KubeRay and Argo CD on loopback (state in .driftloop/k8s)
	$(K8S_CLUSTER) up

k8s-down: ## stop what `make k8s-up` started
	@if [ -x $(PY) ]; then $(K8S_CLUSTER) down; else echo "nothing installed, nothing to stop"; fi

k8s-status: install ## each control-plane process, its pid and whether it answers
	$(K8S_CLUSTER) status

# Starts the control plane unless it already runs, runs tests/k8s, stops only what it started.
test-k8s: install k8s-deps k8s-tools ## the k8s tier: real controllers acting on deploy/k8s (builds the tools once)
	@if $(K8S_CLUSTER) status >/dev/null 2>&1; then started=0; else started=1; \
	  $(K8S_CLUSTER) up || { $(K8S_CLUSTER) down; exit 1; }; fi; \
	K8S_STATE=$(K8S_CLUSTER_STATE) K8S_TOOLS=$(K8S_CLUSTER_DIR) KUSTOMIZE=$(KUSTOMIZE) \
	  $(PYTEST) tests/k8s --durations=10; rc=$$?; \
	if [ $$started = 1 ]; then $(K8S_CLUSTER) down; fi; exit $$rc

k8s-tools: $(K8S_CLUSTER_TOOLS)
