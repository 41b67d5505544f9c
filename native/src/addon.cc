// The weave_native addon: one export object per part (today `netlink`; the sleeve datapath and the
// wait program join later), so the TypeScript loaders stay independent of one another.
#include <napi.h>

#include "netlink.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("netlink", weave::netlink::Exports(env));
  return exports;
}

NODE_API_MODULE(weave_native, Init)
