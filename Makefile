# Two commands do all the set-up on a fresh Debian machine, as root: `make demo` and `make test`.
# Debian packages, without their recommends (those pulled in a kernel image). What building and running
# need (the router, the CLI, the demo: docker, busybox, btrfs), and what only the tests and benches add.
RUN_PACKAGES := libpcap-dev libssl-dev python3 make g++ iproute2 nftables iputils-ping iputils-arping ethtool procps util-linux docker.io busybox-static btrfs-progs
TEST_PACKAGES := iperf3 tcpdump iptables chromium fonts-dejavu-core bind9-dnsutils dnsmasq-base containernetworking-plugins containerd wireguard-go wireguard-tools systemd docker-compose
APT_INSTALL = dpkg -s $(1) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1); }

.PHONY: all node deps test-deps build deb test lint format demo bench clean
all: build

# A Node.js 20.19+ (the machine's, or Node 22 from the npm registry in .tools/node: see bin/ensure-node).
export PATH := $(CURDIR)/.tools/node/node_modules/.bin:$(PATH)
node:
	@bin/ensure-node

# node-gyp builds `cap` against the headers of the Node that runs it; the npm registry's Node ships its
# own (node-linux-ARCH/include/node), and without them node-gyp would download them from elsewhere.
# Expanded when the recipe runs, so after `node` has installed .tools/node.
TOOLS_NODEDIR = $(patsubst %/include/node,%,$(firstword $(wildcard $(CURDIR)/.tools/node/node_modules/node/node_modules/node-*/include/node)))

# Debian packages (only when one is missing), then the npm packages, then the build.
deps: node
	@$(call APT_INSTALL,$(RUN_PACKAGES))
	@[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || $(if $(TOOLS_NODEDIR),npm_config_nodedir=$(TOOLS_NODEDIR)) npm ci --no-audit --no-fund

build: deps
	$(if $(TOOLS_NODEDIR),npm_config_nodedir=$(TOOLS_NODEDIR)) npm run build --silent

# weave-ts_<version>_<arch>.deb for Debian 12 hosts (packaging/build-deb.sh), carrying the Node it was built with.
deb: build
	packaging/build-deb.sh

test-deps:
	@$(call APT_INSTALL,$(TEST_PACKAGES))

test: test-deps build
	npx mocha

# Biome formats (width 120) and lints; `make format` rewrites the tree as `make lint` wants it.
lint: deps
	npx biome ci .

format: deps
	npx biome check --write .

demo: build
	node dist/lab/demo.js

bench: test-deps build
	node dist/bench/throughput.js

clean:
	rm -rf dist weave-ts_*.deb
