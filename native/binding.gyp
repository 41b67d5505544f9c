{
  # One addon for every native part of weave (see ARCHITECTURE.md, native/): each part is its own
  # source file with its own export object; addon.cc registers them.
  "targets": [
    {
      "target_name": "weave_native",
      "sources": ["src/addon.cc", "src/netlink.cc", "src/rtnl.cc", "src/offload.cc", "src/sleeve-io.cc", "src/sleeve-engine.cc", "src/sleeve.cc", "src/seal.cc"],
      # N-API (not V8) so one build runs on Node 20, 22 and 24; C++ exceptions on, and a thrown
      # std::exception becomes a JS Error instead of an abort.
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-Wall", "-Wextra", "-O2", "-std=c++17"],
      "ldflags": ["-pthread"],
      "libraries": ["-lcrypto"]
    }
  ]
}
