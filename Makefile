# Two commands do all the set-up on a fresh Debian machine, as root: `make demo` and `make test`.
APT_PACKAGES := libpcap-dev libssl-dev iproute2 iputils-ping iperf3 ethtool tcpdump procps util-linux python3 make g++ chromium fonts-dejavu-core docker.io busybox-static iputils-arping bind9-dnsutils dnsmasq-base containernetworking-plugins containerd iptables wireguard-go wireguard-tools btrfs-progs docker-compose

.PHONY: all node deps build test lint format demo bench clean
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
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); }
	@[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || $(if $(TOOLS_NODEDIR),npm_config_nodedir=$(TOOLS_NODEDIR)) npm ci --no-audit --no-fund

build: deps
	$(if $(TOOLS_NODEDIR),npm_config_nodedir=$(TOOLS_NODEDIR)) npm run build --silent

test: build
	npx mocha

# Biome formats (width 120) and lints; `make format` rewrites the tree as `make lint` wants it.
lint: deps
	npx biome ci .

format: deps
	npx biome check --write .

demo: build
	node dist/lab/demo.js

bench: build
	node dist/bench/throughput.js

clean:
	rm -rf dist
